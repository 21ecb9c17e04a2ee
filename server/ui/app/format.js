// How values read on the page: ages, times, sizes, numbers.

/** "12 s", "4 min", "3 h", "2 d" since `iso` (or until, for a time ahead). @param {string | null | undefined} iso */
export function age(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  const ahead = seconds < 0;
  const s = Math.abs(seconds);
  const text =
    s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
  return ahead ? `in ${text}` : `${text} ago`;
}

/** A local, readable time; the ISO string stays in the element's datetime. @param {string | null | undefined} iso */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** @param {number | null | undefined} bytes */
export function size(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Progress as shown: at most one decimal. @param {number} progress */
export function percent(progress) {
  return `${Math.round(progress * 10) / 10} %`;
}

/** @param {unknown} value */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}
