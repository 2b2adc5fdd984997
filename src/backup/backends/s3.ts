// Owns the S3-compatible Backend (`s3://bucket/prefix?endpoint=…&region=…`), on the AWS SDK v3.
// Files are objects under the prefix in the repository layout. Writes check that the object is
// absent and send If-None-Match: * (S3 conditional writes) so nothing is overwritten; with
// retainUntil they set Object Lock retention (COMPLIANCE mode) and a Content-MD5, as S3 requires.
// Retries are left to the retry wrapper (the SDK makes one attempt). Failures map to
// BULWARK_BACKEND_* codes: a missing bucket, bad keys, an unreachable endpoint each say so.
import { createHash } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { BulwarkError, type ErrorCode } from '../../core/errors.js';
import { backendError, checkHandle, filePath, type Backend, type FileInfo, type FileType, type Handle, type WriteOptions } from '../backend.js';

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix without leading or trailing slash ('' for the bucket root). */
  prefix: string;
  endpoint?: string | undefined;
  region?: string | undefined;
  forcePathStyle?: boolean | undefined;
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Extra SDK options (tests). */
  clientConfig?: Partial<S3ClientConfig>;
}

const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'TimeoutError', 'RequestTimeout']);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export class S3Backend implements Backend {
  readonly location: string;
  readonly client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;

  constructor(opts: S3BackendOptions) {
    this.#bucket = opts.bucket;
    this.#prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
    this.location = `s3://${opts.bucket}/${this.#prefix}${opts.endpoint ? ` (${opts.endpoint})` : ''}`;
    this.client = new S3Client({
      region: opts.region ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...opts.clientConfig,
    });
  }

  #key(h: Handle): string {
    checkHandle(h);
    return this.#prefix ? `${this.#prefix}/${filePath(h)}` : filePath(h);
  }

  #fail(h: Handle | undefined, op: string, err: unknown): BulwarkError {
    const e = err as SdkError;
    const name = e.name ?? e.code ?? '';
    const status = e.$metadata?.httpStatusCode;
    let code: ErrorCode = 'BULWARK_BACKEND_IO';
    let hint: string | undefined;
    if (name === 'NoSuchBucket') {
      code = 'BULWARK_BACKEND_NOT_FOUND';
      hint = `create the bucket '${this.#bucket}' (with Object Lock enabled if the target is immutable), or fix the bucket name in the URL`;
    } else if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      code = 'BULWARK_BACKEND_NOT_FOUND';
    } else if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError', 'AuthorizationHeaderMalformed'].includes(name) || status === 401 || (status === 403 && !['AccessDenied', 'ObjectLocked'].includes(name))) {
      code = 'BULWARK_BACKEND_AUTH';
      hint = 'check access_key_id_file and secret_access_key_file of the target (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), and that the key may use the bucket';
    } else if (name === 'AccessDenied' || name === 'ObjectLocked' || status === 403) {
      code = 'BULWARK_BACKEND_REFUSED';
      hint = 'the bucket policy or an Object Lock retention refused it; check the key\'s permissions';
    } else if (name === 'PreconditionFailed' || status === 412) {
      code = 'BULWARK_BACKEND_EXISTS';
    } else if (['QuotaExceeded', 'InsufficientStorage', 'EntityTooLarge', 'ServiceQuotaExceeded'].includes(name) || status === 507) {
      code = 'BULWARK_BACKEND_FULL';
    } else if (NET_CODES.has(name) || NET_CODES.has(e.code ?? '') || /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|socket hang up/.test(e.message ?? '')) {
      code = 'BULWARK_BACKEND_UNREACHABLE';
      hint = 'check the endpoint in the URL and that the object store is up';
    }
    const what = name === 'NoSuchBucket' ? `the bucket '${this.#bucket}' does not exist` : `${op} failed: ${name || 'error'} ${e.message ?? ''}`.trim();
    const base = backendError(code, this.location, h, what, err);
    return hint ? new BulwarkError(code, base.message, { hint, cause: err }) : base;
  }

  async create(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.#bucket }));
    } catch (err) {
      const e = err as SdkError;
      // HeadBucket has no body: a 404 is the missing bucket, a 403 the credentials.
      if (e.$metadata?.httpStatusCode === 404 || e.name === 'NotFound') throw this.#fail(undefined, 'create', Object.assign(new Error('no such bucket'), { name: 'NoSuchBucket' }));
      if (e.$metadata?.httpStatusCode === 403) throw this.#fail(undefined, 'create', Object.assign(new Error('credentials refused'), { name: 'InvalidAccessKeyId' }));
      throw this.#fail(undefined, 'create', err);
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(h) }));
      return { name: h.name, size: r.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof BulwarkError) throw err;
      throw this.#fail(h, 'stat', err);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    const base = this.#prefix ? `${this.#prefix}/` : '';
    const prefix = type === 'config' ? `${base}config` : `${base}${type}/`;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      } catch (err) {
        throw this.#fail(undefined, `list ${type}`, err);
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key ?? '';
        if (type === 'config') {
          if (key === prefix) yield { name: 'config', size: o.Size ?? 0 };
          continue;
        }
        const name = key.slice(key.lastIndexOf('/') + 1);
        if (!name || name.startsWith('.')) continue;
        yield { name, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const key = this.#key(h);
    if (length === 0) {
      await this.stat(h);
      return Buffer.alloc(0);
    }
    let range: string | undefined;
    if (offset > 0 || length !== undefined) {
      if (length === undefined) {
        const size = (await this.stat(h)).size;
        if (offset >= size) return Buffer.alloc(0);
      }
      range = `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`;
    }
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key, ...(range ? { Range: range } : {}) }));
      const buf = Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array());
      if (length !== undefined && buf.length !== length) {
        throw backendError('BULWARK_BACKEND_IO', this.location, h, `short read: wanted ${length} bytes at ${offset}, got ${buf.length}`);
      }
      return buf;
    } catch (err) {
      if (err instanceof BulwarkError) throw err;
      throw this.#fail(h, 'read', err);
    }
  }

  async write(h: Handle, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    const key = this.#key(h);
    try {
      await this.stat(h);
      throw backendError('BULWARK_BACKEND_EXISTS', this.location, h, 'write refused: the object exists');
    } catch (err) {
      if (!(err instanceof BulwarkError) || err.code !== 'BULWARK_BACKEND_NOT_FOUND') throw err;
    }
    const lock =
      opts.retainUntil !== undefined
        ? {
            ObjectLockMode: 'COMPLIANCE' as const,
            ObjectLockRetainUntilDate: new Date(opts.retainUntil),
            ContentMD5: createHash('md5').update(data).digest('base64'),
          }
        : {};
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Body: data,
          ContentLength: data.length,
          ContentType: 'application/octet-stream',
          IfNoneMatch: '*',
          ...lock,
        }),
      );
    } catch (err) {
      throw this.#fail(h, 'write', err);
    }
  }

  async remove(h: Handle): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(h) }));
    } catch (err) {
      if (err instanceof BulwarkError) throw err;
      const e = err as SdkError;
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return;
      throw this.#fail(h, 'remove', err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** Builds an S3 backend from `s3://bucket/prefix?endpoint=URL&region=R&path_style=true`; credentials from opts, else the SDK chain (environment). */
export function s3FromUrl(url: URL, opts: { credentials?: { accessKeyId: string; secretAccessKey: string } | undefined } = {}): S3Backend {
  const bucket = url.hostname;
  if (url.username || url.password) {
    // Never echo the URL: what is before the @ is probably an access key and its secret.
    throw new BulwarkError('BULWARK_BACKEND_URL', `the s3 URL for bucket '${bucket}' carries credentials before the bucket`, {
      hint: 'keys in a URL end up in argv, shell history, logs and run records: use access_key_id_file and secret_access_key_file (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)',
    });
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new BulwarkError('BULWARK_BACKEND_URL', `'${bucket}' in ${url.href} is not a valid bucket name`, { hint: 'bucket names are 3-63 lowercase letters, digits, dots and dashes: s3://bucket/prefix' });
  }
  const endpoint = url.searchParams.get('endpoint') ?? undefined;
  const pathStyle = url.searchParams.get('path_style');
  return new S3Backend({
    bucket,
    prefix: decodeURIComponent(url.pathname),
    endpoint,
    region: url.searchParams.get('region') ?? undefined,
    forcePathStyle: pathStyle === null ? undefined : pathStyle === 'true' || pathStyle === '1',
    credentials: opts.credentials,
  });
}
