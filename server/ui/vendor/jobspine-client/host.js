/** What a watch needs from its client: the socket calls and the storage. */
export {};
