// Words for what the wire says: event summaries, pause reasons, failure codes and what a
// user can do about each.

import { percent, size } from "./format.js";

/** One line about an event of the timeline. @param {{type: string, data: any}} event */
export function eventSummary(event) {
  const d = event.data ?? {};
  switch (event.type) {
    case "job:created":
      return "created";
    case "job:started":
      return `attempt ${d.attempt} started by ${d.worker_id}${d.resumed ? ", resumed from its checkpoint" : ""}`;
    case "job:progress":
      return `${percent(d.progress ?? 0)}${d.step ? ` — ${d.step}` : ""}`;
    case "job:checkpoint":
      return `checkpoint saved (${size(d.size_bytes)}${d.progress !== undefined ? ` at ${percent(d.progress)}` : ""})`;
    case "job:pause_requested":
      return "pause requested";
    case "job:paused":
      return d.reason === "stalled" ? "paused by the supervisor: its worker stopped" : "paused";
    case "job:recovery":
      return `recovery offered (${d.resumable ? "resumable" : "not resumable"}, ${d.recovery_attempts} of ${d.max_recovery_attempts} recoveries used)`;
    case "job:resumed":
      return d.has_checkpoint ? "resumed: continues from its checkpoint" : "resumed";
    case "job:completed":
      return "completed";
    case "job:failed":
      return `failed: ${d.error?.code ?? "error"} — ${d.error?.message ?? ""}`;
    case "job:cancelled":
      return `cancelled (was ${d.previous_state})`;
    case "job:restarted":
      return `restarted (was ${d.previous_state})`;
    case "job:retrying":
      return `retrying after ${d.error?.code ?? "an error"} (attempt ${d.attempt} failed); runs again ${d.run_at ? `at ${new Date(d.run_at).toLocaleTimeString()}` : "soon"}`;
    default:
      return event.type;
  }
}

/** What the user can do about a failure, by error code. @param {{code: string, retryable?: boolean}} error */
export function failureAdvice(error) {
  switch (error.code) {
    case "worker_lost":
      return "Its worker stopped before saving a checkpoint, so there is nothing to resume from. Restart runs it again from the beginning.";
    case "max_recovery_attempts":
      return "Its workers kept stopping: it was recovered as many times as allowed. Check the workers, then Restart it (from the beginning).";
    case "timeout":
      return "An attempt ran longer than the job's timeout. Restart it, perhaps with a larger timeout or smaller steps.";
    case "handler_error":
      return "The worker's code raised an error for this input. Fix the input or the handler, then Restart it.";
    default:
      return error.retryable
        ? "The failure may be temporary: Restart runs it again."
        : "Restart runs it again from the beginning; if it fails the same way, change its input.";
  }
}
