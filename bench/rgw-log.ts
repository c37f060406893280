// Counts what the local Ceph radosgw served for one bucket, from its own request log (one "beast:" line
// per request at debug_rgw 1, the default of scripts/s3-start.sh), so that two publishers are counted
// by the same referee whatever their own meters say.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const RGW_LOG = join(process.env.SCVMFS_S3_DIR || '/tmp/scvmfs-s3', 'log', 'client.rgw.a.log');

export type ServerKind = 'get' | 'head' | 'put' | 'list' | 'delete';
export type ServerCounts = Record<ServerKind, number> & { other: number };

/** Where the log ends now, or null when this is not the local Ceph (then nothing can be counted). */
export function rgwLogOffset(): number | null {
  return existsSync(RGW_LOG) ? statSync(RGW_LOG).size : null;
}

export function rgwLogSince(offset: number): string {
  const size = statSync(RGW_LOG).size;
  const buf = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(RGW_LOG, 'r');
  try { readSync(fd, buf, 0, buf.length, offset); } finally { closeSync(fd); }
  return buf.toString('utf8');
}

/** The requests for `bucket` in a stretch of the log, by kind (a conditional PUT is a PUT on the wire). */
export function countBucketRequests(log: string, bucket: string): ServerCounts {
  const counts: ServerCounts = { get: 0, head: 0, put: 0, list: 0, delete: 0, other: 0 };
  const re = /beast: \S+ .*?"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP\/1\.1" (\d{3})/g;
  for (const m of log.matchAll(re)) {
    const method = m[1]!;
    const target = m[2]!;
    const path = target.split('?')[0]!;
    const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
    if (path !== `/${bucket}` && !path.startsWith(`/${bucket}/`)) continue;
    const onBucket = path === `/${bucket}` || path === `/${bucket}/`;
    if (method === 'GET') counts[onBucket || /(^|&)list-type=/.test(query) ? 'list' : 'get']++;
    else if (method === 'HEAD') counts.head++;
    else if (method === 'PUT') counts.put++;
    else if (method === 'DELETE' || (method === 'POST' && /(^|&)delete(=|&|$)/.test(query))) counts.delete++;
    else counts.other++;
  }
  return counts;
}

/** Waits until radosgw has written the log lines of everything it answered so far (it buffers them). */
export async function rgwLogSettled(offset: number, marker: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = rgwLogSince(offset);
    if (text.includes(marker)) {
      await new Promise((r) => setTimeout(r, 300));
      return rgwLogSince(offset);
    }
    if (Date.now() > deadline) throw new Error(`radosgw did not log the marker request ${marker} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
