/**
 * Previews and downloads are fetched with the API key and shown through object URLs, so that no key
 * ever travels in a URL (an <img src> or a plain link cannot send an Authorization header).
 */
import { fetchFile } from './api';

const urls = new Map<string, Promise<string>>();

/** An object URL of the file at `path`, fetched once and kept while the page lives. */
export function objectUrl(path: string): Promise<string> {
  let url = urls.get(path);
  if (!url) {
    url = fetchFile(path).then((file) => URL.createObjectURL(file.blob));
    urls.set(path, url);
    url.catch(() => urls.delete(path)); // a failed fetch is tried again next time
  }
  return url;
}

/** Forget every kept file (another key may not see them). */
export function forgetFiles(): void {
  for (const url of urls.values()) url.then(URL.revokeObjectURL, () => {});
  urls.clear();
}

/** Fetch `path` with the key and save it as a download, named as the server names it. */
export async function saveFile(path: string, fallbackName: string): Promise<void> {
  const file = await fetchFile(path);
  const url = URL.createObjectURL(file.blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = file.filename ?? fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
