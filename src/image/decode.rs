//! Decoding image bytes: completely (any supported format), or only the header for the size.

use std::io::Cursor;

/// Decode image bytes completely (any supported format); the error says why they are unusable.
pub fn decode(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unrecognised image format".into());
    }
    reader.decode().map_err(|e| e.to_string())
}

/// Decode image bytes completely and return the size; the error says why they are unusable.
pub fn decode_check(bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
    decode(bytes).map(|img| (img.width(), img.height()))
}

/// Width and height from the image header, without decoding pixels; None if unreadable.
pub fn measure(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?.into_dimensions().ok()
}
