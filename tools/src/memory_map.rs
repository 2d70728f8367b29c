//! The arena's RAM map as an SVG: one band per phase (the whole session; the translator's work
//! area while encoding and while decoding), each buffer a box at its offset, to scale.

use std::fmt::Write as _;

use picoformer::{Phase, Region};

/// The map of `regions` (as a session's `arena_map` reports them), `total` bytes wide.
pub fn ram_svg(title: &str, regions: &[Region], total: usize) -> String {
    let (left, width, band, gap) = (90.0, 760.0, 34.0, 26.0);
    let phases: Vec<Phase> = [Phase::Session, Phase::Encoding, Phase::Decoding].into_iter().filter(|p| regions.iter().any(|r| r.phase == *p)).collect();
    let height = 40.0 + phases.len() as f64 * (band + gap);
    let scale = width / total.max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="10">"#, left + width + 20.0);
    let _ = writeln!(s, r#"<text x="{left}" y="14" font-size="12">{title}: arena of {total} B ({:.1} KiB), buffers to scale</text>"#, total as f64 / 1024.0);
    for (i, phase) in phases.iter().enumerate() {
        let y = 26.0 + i as f64 * (band + gap);
        let label = match phase {
            Phase::Session => "session",
            Phase::Encoding => "encoding",
            Phase::Decoding => "decoding",
        };
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{label}</text>"#, left - 6.0, y + band / 2.0 + 3.0);
        let _ = writeln!(s, r##"<rect x="{left}" y="{y}" width="{width}" height="{band}" fill="none" stroke="#999"/>"##);
        for (j, r) in regions.iter().filter(|r| r.phase == *phase).enumerate() {
            let (x, w) = (left + r.offset as f64 * scale, (r.bytes as f64 * scale).max(1.0));
            let fill = color(r.name);
            let _ = writeln!(s, r##"<rect x="{x:.1}" y="{y}" width="{w:.1}" height="{band}" fill="{fill}" stroke="#fff"><title>{} {} B at {}</title></rect>"##, r.name, r.bytes, r.offset);
            let text = format!("{} {:.1}K", r.name, r.bytes as f64 / 1024.0);
            if w >= 6.0 * text.len() as f64 {
                let _ = writeln!(s, r#"<text x="{:.1}" y="{}" fill="white">{text}</text>"#, x + 3.0, y + band / 2.0 + 3.0);
            } else if w >= 8.0 {
                // too narrow for its label: the name below the band, staggered
                let _ = writeln!(s, r#"<text x="{:.1}" y="{}" font-size="8">{}</text>"#, x, y + band + 9.0 + 8.0 * (j % 2) as f64, r.name);
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// One colour per kind of buffer.
fn color(name: &str) -> &'static str {
    match name {
        n if n.starts_with("cross") => "#1f77b4",
        n if n.starts_with("self") => "#2ca02c",
        "work" => "#c7c7c7",
        "logits" | "outputs" => "#d62728",
        "x" | "q" | "k" | "v" => "#9467bd",
        n if n.starts_with("beam") => "#8c564b",
        _ => "#ff7f0e",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_buffer_to_scale() {
        let r = |phase, name, offset, bytes| Region { phase, name, offset, bytes };
        let regions = [r(Phase::Session, "cross k", 0, 512), r(Phase::Session, "work", 512, 512), r(Phase::Encoding, "x", 512, 256), r(Phase::Decoding, "logits", 512, 128)];
        let svg = ram_svg("m", &regions, 1024);
        assert_eq!(svg.matches("<rect").count(), 3 + 4);
        // cross k covers half of the 760-pixel band, from its left edge
        assert!(svg.contains(r#"<rect x="90.0" y="26" width="380.0""#), "{svg}");
        assert!(svg.contains("logits 128 B at 512"));
    }
}
