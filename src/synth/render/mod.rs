//! Synthetic scenes (bar charts, scattered shapes, tables, clocks, geometry figures, coloured
//! number boxes) and a small software renderer for them.
//!
//! A [`Scene`] holds the ground truth a question can be asked about; [`random_scene`] draws
//! one from an [`Rng`], and [`render`] turns it into an RGB image of any size. The renderer
//! uses the `Rng` only for layout jitter (scatter positions, background tint), so a scene and
//! an `Rng` state always give the same pixels. All drawing primitives here work directly on
//! the raw RGB buffer, clip at the image bounds and never allocate per pixel.
//!
//! Text is drawn with the built-in 5x7 [`font`], which has uppercase letters only: labels and
//! titles are stored in natural case and appear uppercase in the image.
//!
//! The rooms: [`scene`] (the model and random scenes), [`canvas`] (primitives), [`draw`] (one
//! drawer per kind) and [`encode`] (PNG and JPEG).

pub mod canvas;
pub mod draw;
pub mod encode;
pub mod scene;
#[cfg(test)]
mod tests;

pub use draw::render;
pub use encode::{encode_jpeg, encode_png};
pub use scene::{ARITH_COLOURS, ARITH_MAX_DIGIT, Colour, GeoKind, Scene, SceneKind, Shape, random_scene};
