// What the writer and the upload-grant function exchange: object keys in, which of them exist and how
// to upload the others out.

/** Keys in one grant request (S3's batch limits are 1000 too). */
export const MAX_GRANT_KEYS = 1000;

export interface UploadGrantRequest {
  leaseId: string;
  token: string;
  /** Lease path, as the lease was taken. */
  path: string;
  /** Object keys `data/XX/…[suffix]`, at most MAX_GRANT_KEYS. */
  keys: string[];
}

export interface UploadGrant {
  key: string;
  /** A pre-signed PUT URL; absent when the store makes none (the writer then writes the key itself). */
  url?: string;
  /** Headers the PUT to `url` must send exactly (they are signed). */
  headers?: Record<string, string>;
}

export interface UploadGrantAnswer {
  /** Keys the store already has. */
  present: string[];
  upload: UploadGrant[];
  expiresInSeconds?: number;
}

/** Checks an answer's shape and that it covers exactly the keys asked for, so no object is skipped. */
export function checkGrantAnswer(keys: string[], answer: unknown): UploadGrantAnswer {
  const a = answer as Partial<UploadGrantAnswer> | null;
  if (!a || !Array.isArray(a.present) || !Array.isArray(a.upload)) throw new Error('upload-grant answered without present/upload lists');
  const asked = new Set(keys);
  const seen = new Set<string>();
  const note = (key: unknown) => {
    if (typeof key !== 'string' || !asked.has(key) || seen.has(key)) throw new Error(`upload-grant answered for '${String(key)}', which was not asked for (or twice)`);
    seen.add(key);
  };
  a.present.forEach(note);
  for (const g of a.upload) {
    note(g?.key);
    if (g.url !== undefined && typeof g.url !== 'string') throw new Error(`upload-grant gave a non-string URL for ${g.key}`);
  }
  if (seen.size !== asked.size) throw new Error(`upload-grant answered for ${seen.size} of ${asked.size} keys`);
  return a as UploadGrantAnswer;
}
