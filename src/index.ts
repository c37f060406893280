// The library: the verbs a user calls from their own code, the same ones the `scvmfs` command runs.
// Everything here is stable API; modules not re-exported here are internal.

// Errors: one base with a stable code and kind (and the exit status the CLI gives each kind).
export {
  ScvmfsError, RefusedError, BusyError, UsageError, EXIT_STATUS, describeError, errorFromJSON, exitStatusOf,
  type ErrorKind, type ErrorJSON,
} from './errors.js';

// Stores: a directory, file:// or s3:// URL, and the seam to bring your own.
export { openStore, openMeteredStore, createBucketFor, parseS3Url } from './store/open-store.js';
export { FsStore } from './store/fs-store.js';
export { S3Store, type S3StoreOptions } from './store/s3-store.js';
export {
  PreconditionFailedError, StoreError, TransientStoreError,
  type ObjectStore, type ObjectReader, type PutOptions, type GetResult, type ObjectInfo, type ListPage,
} from './store/object-store.js';
export { MeteredStore, meterSummary, type MeterSnapshot } from './store/metered-store.js';

// Keys and the repository itself.
export { loadKeys, loadOrCreateKeys, writeKeys, keyFilePaths } from './repo/keys-dir.js';
export type { RepositoryKeys } from './format/keys.js';
export {
  initRepository, readHead, RepositoryMissingError, ConcurrentPublishError,
  type InitOptions, type Head,
} from './repo/repository.js';
export { openTrustedHead, type TrustAnchor, type TrustedHead } from './repo/trusted-head.js';
export { resignWhitelist, type ResignKeys, type ResignOptions, type WhitelistOutcome } from './repo/whitelist-signing.js';
export { rotateRepositoryKey, DEFAULT_OVERLAP_MS, type RotateOptions, type RotateOutcome } from './repo/rotate-key.js';
export { addPublisher, listPublishers, removePublisher, loadPublisherKey, type PublisherListing } from './repo/publishers.js';

// Publishing: as the owner (directory or tarball), or as a publisher through the function chain.
export { publishDirectory, type PublishOptions, type PublishSummary, type PublishProgress } from './publish/publish-directory.js';
export { ingestTarball, type IngestOptions, type IngestSummary } from './publish/ingest-tarball.js';
export { openTarballInput } from './publish/tar-source.js';
export {
  publishThroughChain, LeaseBusyError, type ChainPublishOptions, type ChainPublishSummary, type FunctionInvoker,
} from './publish/publish-changeset.js';
export { localInvoker, awsInvoker, type LocalInvoker, type AwsInvokerOptions } from './runtime/invokers.js';

// Reading, verifying and serving.
export { RepositoryReader, VerificationError, type OpenOptions } from './client/reader.js';
export { openSource } from './client/sources.js';
export { verifyRepository, type VerifyReport } from './client/verify.js';
export { runCheck, CheckFailedError, type CheckReport, type CheckRunOptions } from './runtime/check-run.js';
export { serveStore, type ServeOptions, type RunningServer } from './serve/http-server.js';
