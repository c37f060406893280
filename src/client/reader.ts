// The reader: opens a repository the way the stock client does (manifest, certificate, signature,
// whitelist, fingerprint), then serves lookups, listings and file contents with every object checked
// against its hash.
import { RefusedError } from '../errors.js';
import type { ObjectReader } from '../store/object-store.js';
import { ContentHash } from '../format/hash.js';
import { parseManifest, verifyManifestSignature, ROOT_PATH_HASH, type Manifest } from '../format/manifest.js';
import { parseWhitelist, verifyWhitelistSignature, isWhitelistExpired, certificateFingerprint, type Whitelist } from '../format/whitelist.js';
import { decompressObject } from '../format/zlib-object.js';
import { FLAG, kindOfMode, type DirectoryEntry } from '../format/catalog-entry.js';
import { normalizeRepoPath } from '../format/md5path.js';
import { decodeXattrs, type Xattrs } from '../format/xattr.js';
import { CatalogTree } from '../repo/catalog-tree.js';
import { catalogLoader, MANIFEST_KEY, WHITELIST_KEY } from '../repo/repository.js';
import { fetchObjectContent, fetchStoredObject } from '../repo/objects.js';
import { readTags, selectRevision, type RevisionSelector } from '../repo/revisions.js';
import type { Tag } from '../format/history.js';
import type { FileChunk } from '../format/catalog-db.js';

export class VerificationError extends RefusedError {
  constructor(message: string, readonly object?: string) {
    super('verification-failed', message, object ? { object } : undefined);
    this.name = 'VerificationError';
  }
}

export interface OpenOptions {
  fqrn: string;
  /** Master public keys (SPKI PEM); any one may have signed the whitelist. */
  publicKeys: string[];
  /** Accept a whitelist past its expiry (only for archived repositories such as test vectors). */
  allowExpiredWhitelist?: boolean;
  now?: Date;
  /** Read an older revision (by number or tag) instead of the head; trust still comes from the head. */
  at?: RevisionSelector;
}

export class RepositoryReader {
  private constructor(
    readonly source: ObjectReader,
    readonly manifest: Manifest,
    readonly whitelist: Whitelist,
    readonly certificatePem: string,
    private readonly tree: CatalogTree,
    /** The root catalog this reader reads: the head's, or an older revision's. */
    readonly rootHash: ContentHash,
  ) {}

  static async open(source: ObjectReader, options: OpenOptions): Promise<RepositoryReader> {
    const got = await source.get(MANIFEST_KEY);
    if (!got) throw new VerificationError(`no ${MANIFEST_KEY} at ${source.description}: not a repository`, MANIFEST_KEY);
    let signed;
    try {
      signed = parseManifest(got.body);
    } catch (err) {
      throw new VerificationError(`${MANIFEST_KEY} is malformed: ${(err as Error).message}`, MANIFEST_KEY);
    }
    const manifest = signed.manifest;
    if (manifest.fqrn !== options.fqrn) {
      throw new VerificationError(`the repository at ${source.description} is '${manifest.fqrn}', not '${options.fqrn}'`, MANIFEST_KEY);
    }
    if (manifest.rootPathHash !== ROOT_PATH_HASH) throw new VerificationError(`${MANIFEST_KEY} has a wrong root path hash`, MANIFEST_KEY);

    const certificatePem = await fetchObjectContent(source, manifest.certificate, 'X')
      .then((b) => b.toString('utf8'))
      .catch((err: Error) => { throw new VerificationError(`certificate: ${err.message}`, manifest.certificate.objectKey('X')); });
    if (!verifyManifestSignature(signed, certificatePem)) {
      throw new VerificationError(`${MANIFEST_KEY}: signature does not verify against certificate ${manifest.certificate.toHex()} (tampered manifest or wrong certificate)`, MANIFEST_KEY);
    }

    const wl = await source.get(WHITELIST_KEY);
    if (!wl) throw new VerificationError(`no ${WHITELIST_KEY} at ${source.description}`, WHITELIST_KEY);
    let signedWhitelist;
    try {
      signedWhitelist = parseWhitelist(wl.body);
    } catch (err) {
      throw new VerificationError(`${WHITELIST_KEY} is malformed: ${(err as Error).message}`, WHITELIST_KEY);
    }
    if (!verifyWhitelistSignature(signedWhitelist, options.publicKeys)) {
      throw new VerificationError(`${WHITELIST_KEY}: signature does not verify with the given public key(s) (wrong key or tampered whitelist)`, WHITELIST_KEY);
    }
    const whitelist = signedWhitelist.whitelist;
    if (whitelist.fqrn !== options.fqrn) throw new VerificationError(`${WHITELIST_KEY} is for '${whitelist.fqrn}', not '${options.fqrn}'`, WHITELIST_KEY);
    if (isWhitelistExpired(whitelist, options.now ?? new Date()) && !options.allowExpiredWhitelist) {
      throw new VerificationError(`${WHITELIST_KEY} expired on ${whitelist.expiresAt.toISOString()}; the repository owner must re-sign it ` +
        `(a client will refuse to mount it)`, WHITELIST_KEY);
    }
    const fingerprint = certificateFingerprint(certificatePem);
    if (!whitelist.fingerprints.some((f) => f.toUpperCase().startsWith(fingerprint))) {
      throw new VerificationError(`certificate ${fingerprint} is not listed in ${WHITELIST_KEY}`, WHITELIST_KEY);
    }

    const tree = await CatalogTree.open(catalogLoader(source), manifest.rootCatalog, manifest.rootCatalog.algorithm)
      .catch((err: Error) => { throw new VerificationError(`root catalog: ${err.message}`, manifest.rootCatalog.objectKey('C')); });
    const revision = tree.root.revision;
    if (revision !== manifest.revision) {
      throw new VerificationError(`root catalog revision ${revision} differs from manifest revision ${manifest.revision}`, manifest.rootCatalog.objectKey('C'));
    }
    const head = new RepositoryReader(source, manifest, whitelist, certificatePem, tree, manifest.rootCatalog);
    if (!options.at) return head;
    try {
      const selected = await selectRevision(source, manifest, options.at);
      const old = await head.atRoot(selected.hash);
      if (old.revision !== selected.revision) {
        old.close();
        throw new VerificationError(`root catalog ${selected.hash.toHex()} is revision ${old.revision}, its tag says ${selected.revision}`, selected.hash.objectKey('C'));
      }
      return old;
    } finally {
      head.close();
    }
  }

  /** A reader of an older root catalog (from history or previous_revision) with the same trust. */
  async atRoot(rootCatalog: ContentHash): Promise<RepositoryReader> {
    const tree = await CatalogTree.open(catalogLoader(this.source), rootCatalog, rootCatalog.algorithm);
    return new RepositoryReader(this.source, this.manifest, this.whitelist, this.certificatePem, tree, rootCatalog);
  }

  /** The revision this reader reads (the head's unless opened `at` an older one). */
  get revision(): number {
    return this.tree.root.revision;
  }

  /** The root catalog's own properties and statistics (revision, TTL, counters). */
  get rootCatalog(): CatalogTree['root'] {
    return this.tree.root;
  }

  /** The tags of the head's history database, verified against the manifest's hash. */
  async tags(): Promise<Tag[]> {
    return readTags(this.source, this.manifest);
  }

  get rootCatalogPrevious(): ContentHash | null {
    const p = this.tree.root.property('previous_revision');
    return p ? ContentHash.fromHex(p) : null;
  }

  async stat(path: string): Promise<DirectoryEntry | null> {
    return this.tree.lookup(normalizeRepoPath(path));
  }

  /** Extended attributes of `path` as the catalog records them (an empty map when it has none). */
  async xattrs(path: string): Promise<Xattrs> {
    const p = normalizeRepoPath(path);
    const e = await this.tree.lookup(p);
    if (!e) throw new Error(`no such file or directory: ${p || '/'}`);
    try {
      return decodeXattrs(e.xattr);
    } catch (err) {
      throw new VerificationError(`${p || '/'}: ${(err as Error).message}`, p);
    }
  }

  async list(path: string): Promise<DirectoryEntry[]> {
    const p = normalizeRepoPath(path);
    const e = await this.tree.lookup(p);
    if (!e) throw new Error(`no such file or directory: ${p || '/'}`);
    if (kindOfMode(e.mode) !== 'directory') return [e];
    return this.tree.list(p);
  }

  async isMountpoint(path: string): Promise<boolean> {
    return this.tree.isMountpoint(normalizeRepoPath(path));
  }

  /** The content of a regular file, verified object by object. */
  async readFile(path: string): Promise<Buffer> {
    const p = normalizeRepoPath(path);
    const e = await this.tree.lookup(p);
    if (!e) throw new Error(`no such file: ${p || '/'}`);
    return this.readEntry(p, e);
  }

  async readEntry(path: string, e: DirectoryEntry): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of this.readEntryPieces(path, e)) parts.push(part);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * The content of a regular file piece by piece (one piece per chunk), each verified before it is
   * yielded, so a large chunked file streams through with one chunk in memory.
   */
  async *readPieces(path: string): AsyncGenerator<Buffer> {
    const p = normalizeRepoPath(path);
    const e = await this.tree.lookup(p);
    if (!e) throw new Error(`no such file: ${p || '/'}`);
    yield* this.readEntryPieces(p, e);
  }

  /** The chunk list of a chunked file as the catalog records it (offsets, sizes, `P` object hashes). */
  async chunkList(path: string, e: DirectoryEntry): Promise<FileChunk[]> {
    return this.tree.chunks(normalizeRepoPath(path), e.chunkAlgorithm ?? this.manifest.rootCatalog.algorithm);
  }

  async *readEntryPieces(path: string, e: DirectoryEntry): AsyncGenerator<Buffer> {
    if (kindOfMode(e.mode) !== 'file') throw new Error(`not a regular file: ${path}`);
    if (e.extraFlags & FLAG.external) throw new Error(`${path} is an external file; its data is not in the repository`);
    if (!(e.extraFlags & FLAG.chunked)) {
      if (!e.hash) throw new VerificationError(`${path}: regular file without a content hash`, path);
      const content = await this.objectContent(e.hash, '', e.compression);
      if (content.length !== e.size) {
        throw new VerificationError(`${path}: content has ${content.length} bytes, catalog says ${e.size}`, e.hash.objectKey(''));
      }
      yield content;
      return;
    }
    const chunks = await this.tree.chunks(path, e.chunkAlgorithm ?? this.manifest.rootCatalog.algorithm);
    let offset = 0;
    for (const c of chunks) {
      if (c.offset !== offset) throw new VerificationError(`${path}: chunk list is not contiguous at offset ${offset} (next chunk at ${c.offset})`, path);
      const part = await this.objectContent(c.hash, 'P', e.compression);
      if (part.length !== c.size) throw new VerificationError(`${path}: chunk at ${c.offset} has ${part.length} bytes, catalog says ${c.size}`, c.hash.objectKey('P'));
      offset += c.size;
      if (offset > e.size) break;
      yield part;
    }
    if (offset !== e.size) throw new VerificationError(`${path}: chunks cover ${offset} bytes, catalog says ${e.size}`, path);
  }

  private async objectContent(hash: ContentHash, suffix: '' | 'P', compression: 'zlib' | 'none'): Promise<Buffer> {
    const stored = await fetchStoredObject(this.source, hash, suffix).catch((err: Error) => {
      throw new VerificationError(err.message, hash.objectKey(suffix));
    });
    if (compression === 'none') return stored;
    try {
      return decompressObject(stored, `object ${hash.objectKey(suffix)}`);
    } catch (err) {
      throw new VerificationError((err as Error).message, hash.objectKey(suffix));
    }
  }

  /** Every entry below `path`, parents before children. */
  async *walk(path = ''): AsyncGenerator<{ path: string; entry: DirectoryEntry }> {
    const p = normalizeRepoPath(path);
    const root = await this.tree.lookup(p);
    if (!root) throw new Error(`no such file or directory: ${p || '/'}`);
    const stack = [{ path: p, entry: root }];
    while (stack.length > 0) {
      const item = stack.pop()!;
      yield item;
      if (kindOfMode(item.entry.mode) === 'directory') {
        const kids = await this.tree.list(item.path);
        for (let i = kids.length - 1; i >= 0; i--) stack.push({ path: `${item.path}/${kids[i]!.name}`, entry: kids[i]! });
      }
    }
  }

  close(): void {
    this.tree.close();
  }
}
