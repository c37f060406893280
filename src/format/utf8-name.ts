// Catalogs store names as UTF-8 text, so a name from a file system or a tarball must be valid UTF-8
// byte for byte: decoding invalid bytes with replacement characters would silently rename the file,
// and could merge two different names into one entry.

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `bytes` as text when they are valid UTF-8, else null. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return strict.decode(bytes);
  } catch {
    return null;
  }
}

/** Readable form of a name whatever its bytes: valid UTF-8 runs as text, every other byte as `\xNN`. */
export function escapeNameBytes(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const length = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    const text = length > 0 && i + length <= bytes.length ? decodeUtf8(bytes.subarray(i, i + length)) : null;
    if (text !== null && length > 1) {
      out += text;
      i += length;
    } else if (text !== null && b >= 0x20 && b !== 0x5c && b !== 0x7f) {
      out += text;
      i++;
    } else {
      out += b === 0x5c ? '\\\\' : `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return out;
}
