//! The tray icon, drawn in code for each [`Mood`] (an ARGB32 pixmap, as StatusNotifierItem
//! wants): a coloured disc with a white tunnel chevron. No image files or decoders needed.

use crate::menu::Mood;

/// The colour of a mood (RGB).
fn colour(mood: Mood) -> [u8; 3] {
    match mood {
        Mood::Idle => [0x64, 0x74, 0x8b],      // slate: nothing running
        Mood::Active => [0x0e, 0x9f, 0x6e],    // green: forwards on
        Mood::Attention => [0xf5, 0x9e, 0x0b], // amber: needs the user
    }
}

/// An icon of `size`×`size` pixels, ARGB32 in network byte order, row-major (StatusNotifierItem).
pub fn pixmap(mood: Mood, size: u32) -> Vec<u8> {
    draw(size, |disc, glyph| {
        let [r, g, b] = colour(mood);
        let mix = |c: u8| (f32::from(c) * (1.0 - glyph) + 255.0 * glyph).round() as u8;
        [(disc * 255.0).round() as u8, mix(r), mix(g), mix(b)]
    })
}

/// The same icon as RGBA bytes (what tray-icon takes on macOS and Windows).
#[cfg(any(target_os = "macos", windows, test))]
pub fn rgba(mood: Mood, size: u32) -> Vec<u8> {
    let mut data = pixmap(mood, size);
    for pixel in data.chunks_exact_mut(4) {
        pixel.rotate_left(1);
    }
    data
}

/// A macOS template image: black where the icon is opaque, the chevron cut out, so that the
/// menu bar can tint it for light and dark appearance.
#[cfg(any(target_os = "macos", windows, test))]
pub fn template_rgba(size: u32) -> Vec<u8> {
    draw(size, |disc, glyph| [0, 0, 0, (disc * (1.0 - glyph) * 255.0).round() as u8])
}

/// Rasterises the disc and the chevron; `pixel(disc, glyph)` gets each shape's coverage 0..1.
fn draw(size: u32, pixel: impl Fn(f32, f32) -> [u8; 4]) -> Vec<u8> {
    let s = size as f32;
    let centre = s / 2.0;
    let radius = s * 0.46;
    // The chevron ">" from two strokes.
    let stroke = s * 0.09;
    let (tip, top, bottom) = ((s * 0.64, centre), (s * 0.42, s * 0.28), (s * 0.42, s * 0.72));
    let mut data = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let disc = coverage(radius - ((px - centre).powi(2) + (py - centre).powi(2)).sqrt());
            let d = segment_distance((px, py), top, tip).min(segment_distance((px, py), bottom, tip));
            data.extend_from_slice(&pixel(disc, coverage(stroke - d)));
        }
    }
    data
}

/// Anti-aliasing: signed distance inside an edge (pixels) → coverage 0..1.
fn coverage(inside: f32) -> f32 {
    (inside + 0.5).clamp(0.0, 1.0)
}

fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    ((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_are_transparent_the_rim_has_the_mood_colour_and_the_chevron_is_white() {
        let size = 32;
        let icon = pixmap(Mood::Attention, size);
        assert_eq!(icon.len(), 32 * 32 * 4);
        let at = |x: u32, y: u32| &icon[((y * size + x) * 4) as usize..][..4];
        assert_eq!(at(0, 0)[0], 0, "corner transparent");
        assert_eq!(at(4, 16), [255, 0xf5, 0x9e, 0x0b], "left of the disc: amber, opaque");
        let tip = at(20, 16);
        assert!(tip[0] == 255 && tip[1..].iter().all(|&c| c > 240), "chevron tip white: {tip:?}");
        assert_ne!(pixmap(Mood::Idle, size), pixmap(Mood::Active, size));
    }

    #[test]
    fn rgba_is_the_same_icon_with_alpha_last() {
        let (argb, rgba) = (pixmap(Mood::Active, 16), rgba(Mood::Active, 16));
        for (a, b) in argb.chunks(4).zip(rgba.chunks(4)) {
            assert_eq!([a[1], a[2], a[3], a[0]], [b[0], b[1], b[2], b[3]]);
        }
    }

    #[test]
    fn the_template_is_black_with_the_chevron_cut_out() {
        let size = 32;
        let icon = template_rgba(size);
        let at = |x: u32, y: u32| &icon[((y * size + x) * 4) as usize..][..4];
        assert_eq!(at(0, 0)[3], 0, "corner transparent");
        assert_eq!(at(4, 16), [0, 0, 0, 255], "disc opaque black");
        assert!(at(20, 16)[3] < 16, "chevron tip cut out: {:?}", at(20, 16));
        assert!(icon.chunks(4).all(|p| p[..3] == [0, 0, 0]), "only black: the menu bar tints it");
    }
}
