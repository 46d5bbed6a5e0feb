import { describe, expect, it } from 'vitest';
import { FormProblem, checkFiles, checkUrls } from './form';

const file = (name: string, type = 'image/png') => new File([new Uint8Array([1])], name, { type });

describe('checked before anything is sent', () => {
  it('image URLs: 1, 4 or 8 web addresses', () => {
    expect(checkUrls(['https://a.example/x.png'])).toEqual(['https://a.example/x.png']);
    expect(() => checkUrls(['https://a.example/x.png', 'notaurl'])).toThrow('Line 2 is not a web address');
    expect(() => checkUrls(['ftp://a.example/x.png'])).toThrow(FormProblem);
    expect(() => checkUrls(['https://a/1', 'https://a/2'])).toThrow('Give 1, 4 or 8 image URLs, not 2.');
    expect(() => checkUrls([])).toThrow(FormProblem);
  });
  it('files: 1, 4 or 8 images', () => {
    expect(() => checkFiles([file('a.png')])).not.toThrow();
    expect(() => checkFiles([file('a.png'), file('b.png'), file('c.png')])).toThrow('Give 1, 4 or 8 images, not 3.');
    expect(() => checkFiles([file('a.txt', 'text/plain')])).toThrow('a.txt is not an image.');
    expect(() => checkFiles([])).toThrow(FormProblem);
  });
});
