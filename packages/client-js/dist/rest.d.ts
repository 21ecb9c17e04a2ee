/**
 * The REST calls of the client (`/api/jobs…`): bearer token, JSON bodies, and the error
 * envelope `{"error": {code, message, details?}}` turned into a {@link JobspineError}.
 */
import type { TokenSource } from "./token.js";
import type { CreateJob, Job, JobPage, ListQuery } from "./wire.js";
/** Longest wait for one REST answer. */
export declare const REST_TIMEOUT_MS = 30000;
export declare class RestApi {
    private readonly baseUrl;
    private readonly tokens;
    constructor(baseUrl: string, tokens: TokenSource);
    create(fields: CreateJob): Promise<Job>;
    get(jobId: string): Promise<Job>;
    list(query?: ListQuery): Promise<JobPage>;
    /** `POST /api/jobs/{id}/{action}` (pause, resume, cancel, restart): the job after it. */
    act(jobId: string, action: "pause" | "resume" | "cancel" | "restart", body?: object): Promise<Job>;
    private call;
}
