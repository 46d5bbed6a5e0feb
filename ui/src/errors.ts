/**
 * What to tell a person when something goes wrong: a short sentence saying what to do next (`summary`)
 * and, behind a toggle, the technical detail as the server worded it (`detail`). Pure, unit-tested.
 *
 * The API's own messages are written for integrators (field paths, settings, docs links): they go to
 * `detail`. A body that is not JSON (an HTML page from a proxy) is never shown, only described.
 */

export interface Explained {
  summary: string;
  detail: string;
}

/** What an error answer carried, as read by api.ts. */
export interface ErrorAnswer {
  status: number;
  statusText: string;
  contentType: string;
  body: string;
  retryAfter: number | null;
  hasKey: boolean;
}

const plain = (summary: string, detail = ''): Explained => ({ summary, detail });

/** The API's `detail` (and `code`) when the body is JSON in its error shape; null otherwise. */
export function parseErrorBody(body: string): { detail: string; code: string | null; requestId: string | null } | null {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    return null;
  }
  if (!data || typeof data !== 'object' || !('detail' in data)) return null;
  const record = data as Record<string, unknown>;
  let detail = '';
  if (typeof record.detail === 'string') detail = record.detail;
  else if (Array.isArray(record.detail)) {
    // FastAPI's own validation lists, in case a route answers with one.
    detail = record.detail
      .map((d) => (d && typeof d === 'object' && 'msg' in d ? String((d as { msg: unknown }).msg) : String(d)))
      .join('; ');
  }
  const code = typeof record.code === 'string' ? record.code : null;
  const requestId = typeof record.request_id === 'string' ? record.request_id : null;
  return { detail, code, requestId };
}

const httpLine = (a: ErrorAnswer) => `HTTP ${a.status}${a.statusText ? ` ${a.statusText}` : ''}`;

/** A refusal of a request (a 4xx or 5xx answer) in plain words. */
export function explainAnswer(answer: ErrorAnswer): Explained & { code: string | null } {
  const parsed = parseErrorBody(answer.body);
  if (!parsed) {
    // A proxy's or server's page, not the API: describe it, never show it.
    const kind = answer.contentType.split(';')[0].trim() || 'no content type';
    const detail = `${httpLine(answer)}; the answer was not the API's JSON (${kind}, ${answer.body.length} bytes, not shown)`;
    if (answer.status === 401) return { ...keyMessage(answer.hasKey, detail), code: null };
    const summary =
      answer.status >= 500 || answer.status === 0
        ? 'The server is not answering properly right now. Try again in a minute.'
        : `The request was refused (${httpLine(answer)}). Reload the page and try again.`;
    return { summary, detail, code: null };
  }
  const detail = `${httpLine(answer)}${parsed.code ? ` (${parsed.code})` : ''}: ${parsed.detail}`;
  return { ...explainDetail(answer, parsed.detail, parsed.code, parsed.requestId, detail), code: parsed.code };
}

function keyMessage(hasKey: boolean, detail: string): Explained {
  return plain(
    hasKey
      ? 'This server did not accept the API key: check it and enter it above'
      : 'This server needs an API key: enter it above',
    detail,
  );
}

function explainDetail(
  answer: ErrorAnswer,
  text: string,
  code: string | null,
  requestId: string | null,
  detail: string,
): Explained {
  const { status } = answer;
  if (status === 401) return keyMessage(answer.hasKey, detail);
  if (status === 403) return plain('This job or upload belongs to another API key.', detail);
  if (status === 429 || (status === 503 && answer.retryAfter !== null)) {
    const wait = answer.retryAfter ?? 60;
    const reason = text.replace(/:?\s*try again in \d+ s.*$/s, '').trim(); // the wait is said once
    const head = status === 429 ? 'Too many requests' : 'The server is busy';
    return plain(reason ? `${head}: try again in ${wait} s (${reason})` : `${head}: try again in ${wait} s`, detail);
  }
  if (status === 413) return plain('A file is too large for this server: use smaller images.', detail);
  if (status === 404) return plain('That job is gone from the server (finished jobs are kept for a while only).', detail);
  if (status >= 500) {
    const id = requestId ? ` (request ${requestId})` : '';
    return plain(`Something went wrong on the server${id}. Try again in a minute.`, detail);
  }
  const count = /got (\d+) images?/.exec(text);
  if (count) return plain(`Give 1, 4 or 8 images, not ${count[1]}.`, detail);
  const url = /image_urls\.(\d+)/.exec(text);
  if (url) return plain(`Image URL ${Number(url[1]) + 1} is not a web address: use http:// or https://.`, detail);
  if (/^prompt:/.test(text)) return plain('Describe the object to make, e.g. “a red cube”.', detail);
  if (code === 'unsupported_prompt' || /procedural image backend/.test(text)) return explainOffline(text, detail);
  return plain(firstSentence(text) || 'The server refused the request.', detail);
}

/** The first sentence of a message, without field paths or settings, at most ~160 characters. */
export function firstSentence(text: string): string {
  const sentence = text.split(/(?<=[.!?])\s|:\s(?=[A-Z])/)[0].trim();
  return sentence.length > 160 ? `${sentence.slice(0, 157).trimEnd()}…` : sentence;
}

function explainOffline(_message: string, detail: string): Explained {
  return plain(
    'This server draws only simple shapes (it runs without FLUX): describe one shape with a colour, e.g. “a tall blue cylinder”.',
    detail,
  );
}

/** The fetch itself failed: no answer at all. */
export function explainNetwork(message: string): Explained {
  return plain('Cannot reach the server. Check your connection; this page keeps trying.', message);
}

// The orchestrator's failure prefixes (orchestrator/stages.py) → what failed, in words.
const STAGE_FAILED: [RegExp, string][] = [
  [/^image stage failed/, 'Making the images failed.'],
  [/^3D reconstruction failed/, 'Building the 3D mesh failed.'],
  [/^post-processing failed/, 'Cleaning up and exporting the mesh failed.'],
];

/** A failed job's message (job.message) in plain words. */
export function explainJobFailure(message: string): Explained {
  const detail = message;
  if (/procedural image backend/.test(message)) return explainOffline(message, detail);
  if (/could not use the image at|could not be fetched|host name could not be resolved/.test(message)) {
    return plain('An image could not be fetched from its URL: check the address, and that it is public.', detail);
  }
  if (/timed out|timeout/i.test(message)) return plain('The job took too long and was stopped. Try again.', detail);
  const stage = STAGE_FAILED.find(([prefix]) => prefix.test(message));
  if (stage) return plain(`${stage[1]} Try again, or try other images or another prompt.`, detail);
  return plain(firstSentence(message) || 'The job failed.', detail);
}
