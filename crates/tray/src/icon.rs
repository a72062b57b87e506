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

/// An icon of `size`×`size` pixels, ARGB32 in network byte order, row-major.
pub fn pixmap(mood: Mood, size: u32) -> Vec<u8> {
    let [r, g, b] = colour(mood);
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
            let glyph = coverage(stroke - d);
            let mix = |c: u8| (f32::from(c) * (1.0 - glyph) + 255.0 * glyph).round() as u8;
            data.extend_from_slice(&[(disc * 255.0).round() as u8, mix(r), mix(g), mix(b)]);
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
}
