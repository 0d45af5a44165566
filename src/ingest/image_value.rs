//! Image values in the forms public datasets use: an HF `Image` struct `{bytes, path}` (one or
//! a list), a path string, a base64 string or a `data:` URL, raw bytes. The kind is detected per
//! value, unless the input's `image_encoding` names it. A value that is none of them rejects its
//! row as `bad_image_value`, with a detail that gives its length and a clipped start, never the
//! payload.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::layout::Reject;
use super::value::Val;
use super::{ImageEncoding, ImageSource};
use crate::text::clip;

/// Longest string taken for a file name; longer ones are payloads.
const MAX_PATH: usize = 4096;

/// Shortest string that auto-detection tries as base64 (a real image encodes to far more).
const MIN_BASE64: usize = 32;

/// Whether the bytes start like an image file cotforge decodes (PNG, JPEG, GIF, WebP, BMP).
fn is_image(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
        || b.starts_with(&[0xFF, 0xD8, 0xFF])
        || b.starts_with(b"GIF8")
        || (b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP")
        || b.starts_with(b"BM")
}

/// The string decoded as base64 (standard or URL-safe alphabet, padded or not, line breaks
/// ignored).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let t: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(&t).ok())
}

/// Whether every character could be base64 and the string is long enough to be an image.
fn base64_alphabet(s: &str) -> bool {
    s.len() >= MIN_BASE64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=-_\r\n".contains(&c))
}

/// The payload of a `data:` URL, or why the URL is unusable; None when `s` is no data URL.
fn data_url(s: &str) -> Option<Result<&str, String>> {
    let rest = s.strip_prefix("data:")?;
    Some(match rest.split_once(',') {
        Some((meta, payload)) if meta.ends_with(";base64") => Ok(payload),
        Some((meta, _)) => Err(format!("a data: URL that is not base64 (`data:{}`)", clip(meta, 40))),
        None => Err("a data: URL without a comma".into()),
    })
}

/// How a value is named in a detail: its length and its clipped start.
fn describe(s: &str) -> String {
    format!("{} chars, starting `{}`", s.chars().count(), clip(s, 24))
}

fn bytes(b: Vec<u8>, path: Option<String>) -> ImageSource {
    ImageSource::Bytes { bytes: b, path }
}

/// A string image value read as `enc` says (an empty string is no image).
pub(super) fn from_str(s: &str, enc: ImageEncoding, what: &str) -> Result<Option<ImageSource>, Reject> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = |why: String| Reject::new("bad_image_value", format!("{what}: {why}"));
    let base64 = |payload: &str| {
        decode_base64(payload)
            .map(|b| Some(bytes(b, None)))
            .ok_or_else(|| bad(format!("not valid base64 ({})", describe(s))))
    };
    match enc {
        ImageEncoding::Path => as_path(s).map(Some).map_err(bad),
        ImageEncoding::Bytes => Err(bad(format!("a string ({}) where image bytes are expected", describe(s)))),
        ImageEncoding::Base64 => match data_url(s) {
            Some(Ok(payload)) => base64(payload),
            Some(Err(why)) => Err(bad(why)),
            None => base64(s),
        },
        ImageEncoding::Auto => {
            if let Some(url) = data_url(s) {
                return base64(url.map_err(bad)?);
            }
            if base64_alphabet(s)
                && let Some(b) = decode_base64(s).filter(|b| is_image(b))
            {
                return Ok(Some(bytes(b, None)));
            }
            as_path(s).map(Some).map_err(bad)
        }
    }
}

/// A string taken as a file name, refused when it cannot be one.
fn as_path(s: &str) -> Result<ImageSource, String> {
    if s.len() > MAX_PATH || s.contains(['\0', '\n', '\r']) {
        return Err(format!("neither a file path, a base64 image nor a data: URL ({})", describe(s)));
    }
    Ok(ImageSource::Path(s.to_string()))
}

/// One image value of any form (None for null and empty values).
pub(super) fn one_image(v: &Val, enc: ImageEncoding, what: &str) -> Result<Option<ImageSource>, Reject> {
    let bad = |v: &Val| {
        Reject::new(
            "bad_image_value",
            format!("{what} holds {}; expected a path, base64, a data: URL, bytes or {{bytes, path}}", v.kind()),
        )
    };
    match v {
        Val::Null => Ok(None),
        Val::Str(s) => from_str(s, enc, what),
        Val::Bytes(b) if b.is_empty() => Ok(None),
        Val::Bytes(b) => match enc {
            // a binary column holding base64 text
            ImageEncoding::Base64 => match std::str::from_utf8(b) {
                Ok(s) => from_str(s, enc, what),
                Err(_) => Err(Reject::new("bad_image_value", format!("{what}: binary that is not base64 text"))),
            },
            _ => Ok(Some(bytes(b.clone(), None))),
        },
        Val::Map(_) => {
            let path = match v.get("path") {
                Some(Val::Str(p)) if !p.is_empty() => Some(p.clone()),
                _ => None,
            };
            match (v.get("bytes"), path) {
                (Some(Val::Bytes(b)), path) if !b.is_empty() => Ok(Some(bytes(b.clone(), path))),
                // `{bytes, path}` written to JSON by a datasets export: bytes as base64 text
                (Some(Val::Str(s)), path) if !s.is_empty() => {
                    let enc = if enc == ImageEncoding::Auto { ImageEncoding::Base64 } else { enc };
                    match from_str(s, enc, what)? {
                        Some(ImageSource::Bytes { bytes: b, .. }) => Ok(Some(bytes(b, path))),
                        other => Ok(other),
                    }
                }
                (None | Some(Val::Null) | Some(Val::Bytes(_)) | Some(Val::Str(_)), Some(p)) => {
                    from_str(&p, if enc == ImageEncoding::Auto { ImageEncoding::Path } else { enc }, what)
                }
                _ => Err(bad(v)),
            }
        }
        other => Err(bad(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

    fn auto(s: &str) -> Result<Option<ImageSource>, Reject> {
        from_str(s, ImageEncoding::Auto, "column `image`")
    }

    #[test]
    fn strings_are_told_apart_by_what_they_hold() {
        let b64 = STANDARD.encode(PNG);
        assert_eq!(auto(&b64).unwrap(), Some(bytes(PNG.to_vec(), None)));
        assert_eq!(auto(&format!("data:image/png;base64,{b64}")).unwrap(), Some(bytes(PNG.to_vec(), None)));
        assert_eq!(auto("images/0001.png").unwrap(), Some(ImageSource::Path("images/0001.png".into())));
        // base64 of something that is no image stays a (strange) path; a payload is never one
        let text = STANDARD.encode(b"just some words that are not an image at all");
        assert_eq!(auto(&text).unwrap(), Some(ImageSource::Path(text.clone())));
        let huge = "A".repeat(MAX_PATH) + "\n";
        let e = auto(&huge).unwrap_err();
        assert_eq!(e.reason, "bad_image_value");
        assert!(e.detail.len() < 200, "{}", e.detail);
        assert!(e.detail.contains(&format!("{} chars", huge.len())), "{}", e.detail);
        assert_eq!(auto("").unwrap(), None);
    }

    #[test]
    fn the_declared_encoding_wins_and_bad_values_are_short_rejects() {
        let e = from_str("data:image/png;base64,@@@@", ImageEncoding::Base64, "c").unwrap_err();
        assert!(e.detail.contains("not valid base64"), "{}", e.detail);
        let e = from_str("data:text/plain,hello", ImageEncoding::Auto, "c").unwrap_err();
        assert!(e.detail.contains("not base64"), "{}", e.detail);
        assert!(from_str("x.png", ImageEncoding::Bytes, "c").is_err());
        let b64 = STANDARD.encode(PNG);
        assert_eq!(from_str(&b64, ImageEncoding::Path, "c").unwrap(), Some(ImageSource::Path(b64.clone())));
        let v = Val::Bytes(b64.clone().into_bytes());
        assert_eq!(one_image(&v, ImageEncoding::Base64, "c").unwrap(), Some(bytes(PNG.to_vec(), None)));
        // `{bytes, path}` from a JSON export carries base64 text
        let m = Val::Map(vec![("bytes".into(), Val::Str(b64)), ("path".into(), Val::Str("a.png".into()))]);
        assert_eq!(one_image(&m, ImageEncoding::Auto, "c").unwrap(), Some(bytes(PNG.to_vec(), Some("a.png".into()))));
        let e = one_image(&Val::Int(3), ImageEncoding::Auto, "c").unwrap_err();
        assert_eq!(e.reason, "bad_image_value");
    }
}
