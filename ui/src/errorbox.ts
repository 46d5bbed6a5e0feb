/**
 * One place per panel where an error shows: a short summary (an alert, so it is announced once when it
 * changes) and the technical detail behind a "Technical detail" toggle. Markup (index.html):
 *   <div class="error-box" id="…"><p class="error-summary" role="alert"></p>
 *   <details class="technical" hidden><summary>Technical detail</summary><pre></pre></details></div>
 */
import type { Explained } from './errors';

export class ErrorBox {
  private readonly summary: HTMLElement;
  private readonly details: HTMLDetailsElement;
  private readonly text: HTMLElement;

  constructor(private readonly root: HTMLElement) {
    this.summary = root.querySelector('.error-summary') as HTMLElement;
    this.details = root.querySelector('details') as HTMLDetailsElement;
    this.text = root.querySelector('pre') as HTMLElement;
  }

  show(error: Explained | null): void {
    const summary = error?.summary ?? '';
    const detail = error?.detail && error.detail !== summary ? error.detail : '';
    if (this.summary.textContent !== summary) this.summary.textContent = summary;
    this.text.textContent = detail;
    this.details.hidden = !detail;
    if (!detail) this.details.open = false;
    this.root.dataset.shown = summary ? 'true' : 'false';
  }

  clear(): void {
    this.show(null);
  }

  get message(): string {
    return this.summary.textContent ?? '';
  }
}
