//! PNG charts drawn with `plotters` on its bitmap backend.
//!
//! Text is rendered with `ab_glyph` from DejaVu Sans, shipped in `tasks/assets/` with its
//! license and compiled into the binary, so charts do not depend on the fonts of the machine.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::compute::CLASSES;

/// A chart that could not be drawn (the font, the drawing or the PNG file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChartError(String);

impl From<String> for ChartError {
    fn from(message: String) -> Self {
        ChartError(message)
    }
}

/// A chart that cannot be drawn fails the task (drawing it again gives the same result).
impl From<ChartError> for tweetflow_engine::TaskError {
    fn from(e: ChartError) -> Self {
        tweetflow_engine::TaskError::fatal(e.to_string()).with_source(e)
    }
}

/// DejaVu Sans, cut to the Latin, Greek, punctuation, arrow and math signs a chart's labels use
/// (77 KB instead of 760 KB in the binary; `tasks/assets/README.md` says how). Any other
/// character is drawn as a box.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the bundled font cannot be loaded".to_string())
        })
        .clone()
}

fn text(size: f64, color: &'static RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
        .color(color)
        .pos(Pos::new(h, v))
}

/// Draws `s` at `at` in `style`.
fn put(
    r: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    s: &str,
    at: (i32, i32),
    style: TextStyle<'_>,
) -> Result<(), String> {
    r.draw(&Text::new(s, at, style)).map_err(|x| x.to_string())
}

/// The title (at y = 28, in `title_size`) and the subtitle (at `subtitle_y`), centred on a
/// chart `width` pixels wide.
fn heading(
    r: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    width: u32,
    title: &str,
    title_size: f64,
    subtitle: &str,
    subtitle_y: i32,
) -> Result<(), String> {
    let x = width as i32 / 2;
    put(
        r,
        title,
        (x, 28),
        text(title_size, &INK, HPos::Center, VPos::Center),
    )?;
    put(
        r,
        subtitle,
        (x, subtitle_y),
        text(15.0, &MUTED, HPos::Center, VPos::Center),
    )
}

fn err(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("drawing `{}`: {e}", path.display())
}

const INK: RGBColor = RGBColor(33, 37, 41);
const MUTED: RGBColor = RGBColor(108, 117, 125);
const GRID: RGBColor = RGBColor(222, 226, 230);
/// Bar colour for positive tweets.
pub const GREEN: RGBColor = RGBColor(46, 139, 87);
/// Bar colour for negative tweets.
pub const RED: RGBColor = RGBColor(200, 60, 60);
/// Neutral bar colour.
pub const BLUE: RGBColor = RGBColor(31, 119, 180);

/// Shortens `s` to `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Draws the 3×3 confusion matrix (counts and share of the true class) to `path`.
pub fn confusion_matrix(
    path: &Path,
    cm: &[[u64; 3]; 3],
    subtitle: &str,
) -> Result<(u32, u32), ChartError> {
    ensure_font()?;
    let (left, top, cell) = (200i32, 130i32, 150i32);
    let size = ((left + 3 * cell + 40) as u32, (top + 3 * cell + 30) as u32);
    let e = err(path);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let draw = || -> Result<(), String> {
        let r = &root;
        heading(r, size.0, "Confusion matrix", 26.0, subtitle, 58)?;
        put(
            r,
            "predicted",
            (left + 3 * cell / 2, top - 48),
            text(18.0, &INK, HPos::Center, VPos::Center),
        )?;
        put(
            r,
            "true",
            (left - 120, top + 3 * cell / 2),
            text(18.0, &INK, HPos::Right, VPos::Center),
        )?;
        for (i, name) in CLASSES.iter().enumerate() {
            let c = left + i as i32 * cell + cell / 2;
            put(
                r,
                name,
                (c, top - 18),
                text(17.0, &INK, HPos::Center, VPos::Center),
            )?;
            let m = top + i as i32 * cell + cell / 2;
            put(
                r,
                name,
                (left - 14, m),
                text(17.0, &INK, HPos::Right, VPos::Center),
            )?;
        }
        for (t, row) in cm.iter().enumerate() {
            let total: u64 = row.iter().sum();
            for (p, &n) in row.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                };
                let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * share).round() as u8;
                let fill = RGBColor(mix(247, BLUE.0), mix(251, BLUE.1), mix(255, BLUE.2));
                let (x0, y0) = (left + p as i32 * cell, top + t as i32 * cell);
                r.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    fill.filled(),
                ))
                .map_err(|x| x.to_string())?;
                r.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    GRID.stroke_width(1),
                ))
                .map_err(|x| x.to_string())?;
                let ink: &'static RGBColor = if share > 0.5 { &WHITE } else { &INK };
                put(
                    r,
                    &n.to_string(),
                    (x0 + cell / 2, y0 + cell / 2 - 12),
                    text(28.0, ink, HPos::Center, VPos::Center),
                )?;
                let pct = if total == 0 {
                    "–".to_string()
                } else {
                    format!("{:.1}% of true", share * 100.0)
                };
                put(
                    r,
                    &pct,
                    (x0 + cell / 2, y0 + cell / 2 + 22),
                    text(14.0, ink, HPos::Center, VPos::Center),
                )?;
            }
        }
        Ok(())
    };
    draw().map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(size)
}

/// Draws a horizontal bar chart of `(label, count)` pairs, largest first, to `path`.
pub fn bars(
    path: &Path,
    title: &str,
    subtitle: &str,
    items: &[(String, u64)],
    color: RGBColor,
) -> Result<(u32, u32), ChartError> {
    ensure_font()?;
    let (left, top, row, right) = (250i32, 90i32, 28i32, 90i32);
    let rows = items.len().max(1) as i32;
    let size = (1000u32, (top + rows * row + 30) as u32);
    let width = size.0 as i32 - left - right;
    let e = err(path);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let draw = || -> Result<(), String> {
        let r = &root;
        heading(r, size.0, title, 24.0, subtitle, 58)?;
        if items.is_empty() {
            put(
                r,
                "no data",
                (size.0 as i32 / 2, top + row / 2),
                text(16.0, &MUTED, HPos::Center, VPos::Center),
            )?;
            return Ok(());
        }
        let max = items.iter().map(|i| i.1).max().unwrap_or(1).max(1);
        for (i, (label, n)) in items.iter().enumerate() {
            let y = top + i as i32 * row;
            let w = ((*n as f64 / max as f64) * width as f64).round() as i32;
            r.draw(&Rectangle::new(
                [(left, y + 4), (left + w.max(1), y + row - 4)],
                color.filled(),
            ))
            .map_err(|x| x.to_string())?;
            put(
                r,
                &clip(label, 28),
                (left - 10, y + row / 2),
                text(15.0, &INK, HPos::Right, VPos::Center),
            )?;
            put(
                r,
                &n.to_string(),
                (left + w + 8, y + row / 2),
                text(14.0, &INK, HPos::Left, VPos::Center),
            )?;
        }
        r.draw(&PathElement::new(
            vec![(left, top), (left, top + rows * row)],
            INK.stroke_width(1),
        ))
        .map_err(|x| x.to_string())?;
        Ok(())
    };
    draw().map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(size)
}

/// A tick step giving at most about six ticks up to `max`.
fn tick_step(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if max / (step * m) <= 6 {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// Draws tweets per hour of day (24 vertical bars) to `path`.
pub fn hours(
    path: &Path,
    title: &str,
    subtitle: &str,
    counts: &[u64; 24],
) -> Result<(u32, u32), ChartError> {
    ensure_font()?;
    let size = (1000u32, 480u32);
    let (left, right, top, bottom) = (90i32, 30i32, 80i32, 70i32);
    let (pw, ph) = (size.0 as i32 - left - right, size.1 as i32 - top - bottom);
    let e = err(path);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
    let draw = || -> Result<(), String> {
        let r = &root;
        heading(r, size.0, title, 24.0, subtitle, 56)?;
        let max = counts.iter().copied().max().unwrap_or(0).max(1);
        let step = tick_step(max);
        let top_value = max.div_ceil(step) * step;
        let y_of = |v: u64| top + ph - ((v as f64 / top_value as f64) * ph as f64).round() as i32;
        let mut v = 0;
        while v <= top_value {
            let y = y_of(v);
            r.draw(&PathElement::new(
                vec![(left, y), (left + pw, y)],
                GRID.stroke_width(1),
            ))
            .map_err(|x| x.to_string())?;
            put(
                r,
                &v.to_string(),
                (left - 8, y),
                text(13.0, &INK, HPos::Right, VPos::Center),
            )?;
            v += step;
        }
        let slot = pw as f64 / 24.0;
        for (h, &n) in counts.iter().enumerate() {
            let x0 = left + (h as f64 * slot + slot * 0.15).round() as i32;
            let x1 = left + ((h + 1) as f64 * slot - slot * 0.15).round() as i32;
            if n > 0 {
                r.draw(&Rectangle::new(
                    [(x0, y_of(n)), (x1, top + ph)],
                    BLUE.filled(),
                ))
                .map_err(|x| x.to_string())?;
            }
            put(
                r,
                &h.to_string(),
                ((x0 + x1) / 2, top + ph + 14),
                text(13.0, &INK, HPos::Center, VPos::Center),
            )?;
        }
        r.draw(&PathElement::new(
            vec![(left, top + ph), (left + pw, top + ph)],
            INK.stroke_width(1),
        ))
        .map_err(|x| x.to_string())?;
        put(
            r,
            "hour of day (UTC)",
            (left + pw / 2, top + ph + 44),
            text(15.0, &INK, HPos::Center, VPos::Center),
        )?;
        put(
            r,
            "tweets",
            (left - 8, top - 18),
            text(14.0, &INK, HPos::Right, VPos::Center),
        )?;
        Ok(())
    };
    draw().map_err(&e)?;
    root.present().map_err(|x| e(x.to_string()))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(6), 1);
        assert_eq!(tick_step(7), 2);
        assert_eq!(tick_step(30), 5);
        assert_eq!(tick_step(1000), 200);
    }
}
