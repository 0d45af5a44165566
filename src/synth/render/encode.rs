//! Encoding rendered images as PNG or JPEG files.

use image::RgbImage;

/// PNG bytes of `img` (fast compression, `Sub` filter: a third of the time of adaptive
/// filtering on these flat synthetic images, for files about twice as large). Returns an empty vector if the
/// image cannot be encoded (a zero width or height).
pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub);
    match encoder.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// JPEG bytes of `img` at `quality` (clamped to 1-100). Returns an empty vector if the image
/// cannot be encoded (a zero side, or a side over 65535 pixels).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    use image::codecs::jpeg::JpegEncoder;
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    match encoder.encode_image(img) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}
