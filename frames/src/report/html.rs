//! The report page: one HTML file with inline CSS, an inline SVG timeline and a few lines of
//! inline JS (sortable results table); thumbnails are files in the assets folder beside it.
//! No network access is needed to view it. Every string that comes from a record, a
//! submission or the user (node names, RESULT fields, reasons, paths) goes through [`esc`].
use std::fmt::Write;

use super::model::{NodeRow, Report, TileState};
use super::thumbs::Thumb;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a relative path for an `href`/`src` (then escaped as an attribute).
pub fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What the page needs besides the report: per tile its thumbnail and the link to the full
/// frame (relative to the page), and the names of the PNGs when `--png` made them.
pub struct Page<'a> {
    pub report: &'a Report,
    pub thumbs: &'a [Thumb],
    pub links: &'a [Option<String>],
    /// The assets folder as the page refers to it ("report_files").
    pub assets: &'a str,
    /// Width and height of a thumbnail box.
    pub thumb_box: (u32, u32),
    pub pngs: &'a [String],
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.6em 0 .1em}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
code,.mono{font-family:ui-monospace,monospace;font-size:.92em}
pre{white-space:pre-wrap;overflow-wrap:anywhere}
.counts b{font-size:1.1em}.ok{color:#1a7f37}.bad{color:#c62828;font-weight:600}.miss{color:#8a6d00;font-weight:600}
.notes{color:#555;margin:.3em 0;padding-left:1.2em}
.sheet{display:flex;flex-wrap:wrap;gap:6px}
.sheet.big .tile{content-visibility:auto;contain-intrinsic-size:auto calc(var(--w) + 10px) auto calc(var(--h) + 28px)}
.tile{margin:0;padding:2px;border:3px solid transparent;background:#fff}
.tile .pic{display:block;object-fit:contain;background:#111}
.tile figcaption{font-size:12px;max-width:var(--w);overflow-wrap:anywhere}
.tile.failed{border-color:#d32f2f;background:#ffebee}
.tile.failed .pic{opacity:.55}
.tile.missing .pic{background:repeating-linear-gradient(45deg,#eee 0 8px,#ddd 8px 16px);color:#666}
.tile .ph{display:flex;align-items:center;justify-content:center;font-weight:700;text-transform:uppercase;font-size:13px}
.tile.failed .ph{background:#d32f2f;color:#fff;opacity:1}
.badge{display:inline-block;padding:0 4px;border-radius:3px;font-size:11px;font-weight:700;color:#fff;background:#d32f2f}
.badge.rerun{background:#1565c0}.badge.changed{background:#ef6c00}
.why{color:#b71c1c}
svg.timeline{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
svg .b.done{fill:#43a047}svg .b.failed{fill:#d32f2f}svg .b.superseded{fill:url(#hatch);stroke:#757575;stroke-width:.5}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .grid{stroke:#e0e0e0}svg .sep{stroke:#bbb}
table{border-collapse:collapse;background:#fff;margin:.4em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \2195";color:#999}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#ffebee}tr.missing td{background:#fff8e1}
tr.slow td{background:#fff3e0;font-weight:600}
.legend span{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin:0 4px 0 10px}
"#;

/// Thumbnails past [`EAGER_TILES`] loaded as they near the screen; sorting (click a header;
/// numbers by `data-v` or their text); with `?timing` in the URL, the milliseconds from
/// navigation to the load event and a full layout in `<pre id="timing">` (the benchmark's page
/// load time); and a layout probe for the browser test: with `?probe`, the boxes of the tiles
/// and timeline rows as drawn are written into `<pre id="probe">` (the test reads them from
/// the DOM and checks the screenshot's pixels there).
const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function(t){
 t.tHead.addEventListener('click',function(e){
  var th=e.target.closest('th');if(!th)return;var i=th.cellIndex,b=t.tBodies[0];
  var asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
  var key=function(r){var c=r.cells[i];var v=c?(c.dataset.v!==undefined?c.dataset.v:c.textContent):'';
   var n=parseFloat(v);return (v!==''&&!isNaN(n)&&isFinite(v))?[0,n]:[1,v];};
  var rows=Array.prototype.slice.call(b.rows).map(function(r){return [key(r),r];});
  rows.sort(function(x,y){var a=x[0],c=y[0];var d=a[0]-c[0]||(a[1]<c[1]?-1:a[1]>c[1]?1:0);return asc?d:-d;});
  rows.forEach(function(x){b.appendChild(x[1]);});
 });
});
(function(){var imgs=document.querySelectorAll('img[data-src]');if(!imgs.length)return;
 var show=function(im){im.src=im.dataset.src;im.removeAttribute('data-src');};
 if(!('IntersectionObserver' in window)){imgs.forEach(show);return;}
 var io=new IntersectionObserver(function(es){es.forEach(function(e){if(e.isIntersecting){show(e.target);io.unobserve(e.target);}});},{rootMargin:'1500px 0px'});
 imgs.forEach(function(im){io.observe(im);});
})();
if(location.search==='?timing'){addEventListener('load',function(){var h=document.body.offsetHeight;
 var p=document.createElement('pre');p.id='timing';p.textContent='ready_ms='+Math.round(performance.now())+' height='+h;document.body.appendChild(p);});}
if(location.search==='?probe'){
 var out=[];var box=function(k,el){var r=el.getBoundingClientRect();
  out.push([k,Math.round(r.left+scrollX),Math.round(r.top+scrollY),Math.round(r.width),Math.round(r.height)].join(' '));};
 document.querySelectorAll('.tile').forEach(function(el){box('tile-'+el.dataset.state+'-'+el.dataset.index,el);});
 document.querySelectorAll('g.node-row').forEach(function(el){box('row '+el.dataset.node,el);});
 var p=document.createElement('pre');p.id='probe';p.textContent=out.join('\n');document.body.appendChild(p);
}
"#;

pub fn seconds(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} s")
    } else if v >= 10.0 {
        format!("{v:.1} s")
    } else {
        format!("{v:.2} s")
    }
}

/// A tick step of 1, 2 or 5 × 10^k seconds giving about `n` ticks over `span`.
pub fn tick_step(span: f64, n: f64) -> f64 {
    if span.is_nan() || span <= 0.0 {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Geometry of the timeline, shared with the PNG.
pub const LANE_H: f64 = 10.0;
pub const LANE_GAP: f64 = 2.0;
pub const ROW_PAD: f64 = 6.0;

/// Height of a node's row.
pub fn row_height(n: &NodeRow) -> f64 {
    (n.lanes as f64 * (LANE_H + LANE_GAP)).max(28.0) + 2.0 * ROW_PAD
}

fn timeline_svg(out: &mut String, r: &Report) {
    let Some((t0, t1)) = r.span else {
        out.push_str("<p>No task recorded a start and end time yet.</p>");
        return;
    };
    let (label_w, plot_w, axis_h) = (150.0, 950.0, 24.0);
    let span = (t1 - t0).max(1e-3);
    let x = |t: f64| label_w + (t - t0) / span * plot_w;
    let height: f64 = r.nodes.iter().map(row_height).sum::<f64>() + axis_h + 4.0;
    let width = label_w + plot_w + 10.0;
    let _ = write!(
        out,
        r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" viewBox="0 0 {width} {height:.0}" role="img" aria-label="task timeline per node"><defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#e0e0e0"/><line x1="0" y1="0" x2="0" y2="4" stroke="#9e9e9e" stroke-width="2"/></pattern></defs>"##
    );
    let step = tick_step(span, 8.0);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let xt = x(t0 + t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{xt:.1}" y1="{axis_h}" x2="{xt:.1}" y2="{height:.0}"/><text x="{xt:.1}" y="16" text-anchor="middle">{}</text>"#,
            esc(&seconds(t))
        );
        t += step;
    }
    let mut y = axis_h;
    for n in &r.nodes {
        let h = row_height(n);
        let _ = write!(
            out,
            r#"<g class="node-row" data-node="{node}"><line class="sep" x1="0" y1="{y:.1}" x2="{width}" y2="{y:.1}"/><text x="4" y="{ty:.1}" font-weight="bold">{node}</text><text x="4" y="{ty2:.1}">{tasks} tasks, {fails} failed{lost}</text>"#,
            node = esc(&n.node),
            ty = y + ROW_PAD + 10.0,
            ty2 = y + ROW_PAD + 23.0,
            tasks = n.tasks,
            fails = n.failures,
            lost = lost_note(n),
        );
        for b in &n.bars {
            let bx = x(b.start);
            let bw = (x(b.end) - bx).max(1.5);
            let by = y + ROW_PAD + b.lane as f64 * (LANE_H + LANE_GAP);
            let mut title = format!(
                "{} · job {} attempt {} · {} · {}",
                b.unit,
                b.job_id,
                b.attempt,
                seconds(b.end - b.start),
                b.outcome.as_str()
            );
            if let Some(why) = &b.reason {
                let _ = write!(title, ": {why}");
            }
            let _ = write!(
                out,
                r#"<rect class="b {}" x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{LANE_H}"><title>{}</title></rect>"#,
                b.outcome.as_str(),
                esc(&title)
            );
        }
        out.push_str("</g>");
        y += h;
    }
    out.push_str("</svg>");
}

/// Per node (page order) whether it is slow: its median task time is half again the
/// typical (median of medians) one, when there is more than one node.
pub fn slow_nodes(r: &Report) -> Vec<bool> {
    let mut medians: Vec<f64> = r.nodes.iter().filter_map(|n| n.median).collect();
    medians.sort_by(f64::total_cmp);
    let typical = medians.get(medians.len() / 2).copied();
    r.nodes
        .iter()
        .map(|n| {
            matches!((n.median, typical), (Some(m), Some(t)) if r.nodes.len() > 1 && m > 1.5 * t)
        })
        .collect()
}

/// ", 4 lost" after a node's counts when Slurm lost tasks with it.
pub fn lost_note(n: &NodeRow) -> String {
    if n.lost > 0 {
        format!(", {} lost", n.lost)
    } else {
        String::new()
    }
}

fn node_table(out: &mut String, r: &Report) {
    let slow_nodes = slow_nodes(r);
    out.push_str(
        r#"<table class="nodes sortable"><thead><tr><th>node</th><th>tasks (every attempt)</th><th>median task time</th><th>failed</th><th>superseded (requeued or rerun)</th><th>lost with the node (Slurm)</th></tr></thead><tbody>"#,
    );
    for (n, &slow) in r.nodes.iter().zip(&slow_nodes) {
        let _ = write!(
            out,
            r#"<tr{}><td>{}</td><td class="num">{}</td><td class="num" data-v="{}">{}{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            if slow { r#" class="slow""# } else { "" },
            esc(&n.node),
            n.tasks,
            n.median.map(|m| format!("{m:.3}")).unwrap_or_default(),
            n.median.map(seconds).unwrap_or_default(),
            if slow { " (slow)" } else { "" },
            n.failures,
            n.superseded,
            n.lost
        );
    }
    out.push_str("</tbody></table>");
}

/// Tiles whose thumbnails the page names in `src` (shown without JavaScript too); later ones
/// get theirs from the script when scrolled near.
pub const EAGER_TILES: usize = 240;

fn contact_sheet(out: &mut String, p: &Page) {
    let r = p.report;
    let (w, h) = p.thumb_box;
    let _ = write!(
        out,
        r#"<section id="sheet"><h2>Contact sheet</h2><p>{} frames in index order. Click a frame to open it. <span class="badge">FAILED</span> failed (reason and node below it), striped boxes are missing frames, <span class="badge rerun">rerun</span> made by a resubmission, <span class="badge changed">changed</span> the file differs from its record.</p><div class="sheet{big}" style="--w:{w}px;--h:{h}px">"#,
        r.tiles.len(),
        // Many tiles: the browser lays out only those near the screen (the others keep
        // about their size), so a page of 10,000 frames is usable in a few seconds.
        big = if r.tiles.len() > EAGER_TILES {
            " big"
        } else {
            ""
        }
    );
    for (i, t) in r.tiles.iter().enumerate() {
        let thumb = p.thumbs.get(i).unwrap_or(&Thumb::None);
        let _ = write!(
            out,
            r#"<figure class="tile {st}" data-index="{idx}" data-state="{st}" id="f{idx}">"#,
            st = t.state.as_str(),
            idx = t.index
        );
        let link = p.links.get(i).and_then(|l| l.as_deref());
        match (thumb, t.state) {
            (Thumb::Made { file, .. }, _) => {
                // Past the first tiles the thumbnail's address waits in data-src until the
                // tile nears the screen (SCRIPT): 10,000 <img src> elements, even lazy
                // ones, cost Chromium seconds of CPU before the page is usable.
                let attr = if i < EAGER_TILES { "src" } else { "data-src" };
                let img = format!(
                    r#"<img class="pic" loading="lazy" width="{w}" height="{h}" {attr}="{}/{}" alt="frame {}">"#,
                    esc(&url_path(p.assets)),
                    esc(&url_path(file)),
                    t.index
                );
                match link {
                    Some(l) => {
                        let _ = write!(
                            out,
                            r#"<a href="{}" target="_blank">{img}</a>"#,
                            esc(&url_path(l))
                        );
                    }
                    None => out.push_str(&img),
                }
            }
            (_, TileState::Failed) => {
                let _ = write!(
                    out,
                    r#"<div class="pic ph" style="width:{w}px;height:{h}px">failed</div>"#
                );
            }
            (_, state) => {
                // A done frame without an image: its file is gone, unreadable, or the
                // run made none.
                let what = match state {
                    TileState::Missing => "missing",
                    _ => "no image",
                };
                let _ = write!(
                    out,
                    r#"<div class="pic ph" style="width:{w}px;height:{h}px">{what}</div>"#
                );
            }
        }
        let _ = write!(out, "<figcaption><b>{}</b>", t.index);
        if t.state == TileState::Failed {
            out.push_str(r#" <span class="badge">FAILED</span>"#);
        }
        if t.rerun.is_some() {
            out.push_str(r#" <span class="badge rerun">rerun</span>"#);
        }
        if let Thumb::Made {
            changed: Some(_), ..
        } = thumb
        {
            out.push_str(r#" <span class="badge changed">changed</span>"#);
        }
        if let Some(why) = &t.reason {
            let node = t
                .node
                .as_deref()
                .map(|n| format!(" · {n}"))
                .unwrap_or_default();
            let _ = write!(
                out,
                r#"<br><span class="why">{}{}</span>"#,
                esc(why),
                esc(&node)
            );
        }
        if let Some(rerun) = &t.rerun {
            let _ = write!(out, "<br><small>{}</small>", esc(rerun));
        }
        match thumb {
            Thumb::Made {
                changed: Some(c), ..
            } => {
                let _ = write!(out, "<br><small>{}</small>", esc(c));
            }
            Thumb::Error(e) => {
                let _ = write!(out, r#"<br><small class="why">{}</small>"#, esc(e));
            }
            _ => {}
        }
        out.push_str("</figcaption></figure>");
    }
    out.push_str("</div></section>");
}

fn results(out: &mut String, r: &Report) {
    out.push_str(r#"<section id="results"><h2>Results</h2><table class="ranges"><tbody>"#);
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = write!(
            out,
            r#"<tr><th>{}</th><td class="mono">{}</td></tr>"#,
            esc(k),
            if v.is_empty() { "none".into() } else { esc(v) }
        );
    };
    row(out, "missing", &r.missing_ranges);
    row(out, "failed", &r.failed_ranges);
    let jobs: Vec<String> = r.rerun_jobs.iter().map(u32::to_string).collect();
    if !jobs.is_empty() {
        row(out, "jobs to rerun", &jobs.join(","));
    }
    let hosts: Vec<String> = r
        .host_counts
        .iter()
        .map(|(h, d, f)| format!("{h}: {d} done, {f} failed"))
        .collect();
    row(
        out,
        "hosts (unique_hosts)",
        &format!("{} — {}", r.unique_hosts, hosts.join("; ")),
    );
    out.push_str("</tbody></table>");
    if r.rerun_ranges.is_empty() && r.rerun_jobs.is_empty() {
        out.push_str("<p>Nothing to resubmit.</p>");
    } else {
        let _ = write!(
            out,
            r#"<p>To rerun the missing and failed units: <code>frames resubmit {}</code>, which runs:</p><pre class="mono">"#,
            esc(&frames_core::submission::shell_quote(&r.dir))
        );
        if r.resubmit.is_empty() {
            out.push_str("(no recorded sbatch submission covers them: submit them again by hand)");
        }
        for cmd in &r.resubmit {
            let _ = writeln!(out, "{}", esc(cmd));
        }
        out.push_str("</pre>");
    }
    let _ = write!(
        out,
        r#"<p>{} rows: every task record that stands for its unit (the latest attempt), and each unit without one. Click a heading to sort.</p><table id="results-table" class="sortable"><thead><tr><th>index / job</th><th>state</th><th>node</th><th>job</th><th>attempt</th><th>start (s)</th><th>time (s)</th><th>exit</th><th>reason</th>"#,
        r.rows.len()
    );
    for c in &r.columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("<th>other results</th></tr></thead><tbody>");
    let t0 = r.span.map(|s| s.0);
    for row in &r.rows {
        let num = |v: Option<f64>| match v {
            Some(v) => format!(r#"<td class="num" data-v="{v}">{v:.2}</td>"#),
            None => r#"<td class="num" data-v=""></td>"#.into(),
        };
        let _ = write!(
            out,
            r#"<tr class="{st}"><td class="num" data-v="{key}">{unit}</td><td>{st}</td><td>{node}</td><td>{job}</td><td class="num">{att}</td>{start}{secs}<td>{exit}</td><td>{why}</td>"#,
            st = row.state,
            key = row.unit_key,
            unit = esc(&row.unit),
            node = esc(&row.node),
            job = esc(&row.job),
            att = esc(&row.attempt),
            start = num(row.start.zip(t0).map(|(s, t)| s - t)),
            secs = num(row.seconds),
            exit = esc(&row.exit),
            why = esc(&row.reason),
        );
        for f in &row.fields {
            let _ = write!(out, "<td>{}</td>", esc(f));
        }
        let _ = write!(out, r#"<td class="mono">{}</td></tr>"#, esc(&row.other));
    }
    out.push_str("</tbody></table></section>");
}

/// The whole page.
pub fn page(p: &Page) -> String {
    let r = p.report;
    let mut out = String::with_capacity(4096 + r.tiles.len() * 400 + r.rows.len() * 300);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>frames report: {dir}</title><style>{STYLE}</style></head><body><header><h1>frames report</h1><p class="mono">{dir}</p><p class="counts"><b>{exp}</b> expected · <span class="ok">{done} done</span> · <span class="{fc}">{failed} failed</span> · <span class="{mc}">{missing} missing</span> · {hosts} host(s)"#,
        dir = esc(&r.dir),
        exp = r.expected,
        done = r.done,
        failed = r.failed,
        missing = r.missing,
        fc = if r.failed > 0 { "bad" } else { "" },
        mc = if r.missing > 0 { "miss" } else { "" },
        hosts = r.unique_hosts,
    );
    if let Some((a, b)) = r.span {
        let _ = write!(out, " · {} from first start to last end", seconds(b - a));
    }
    out.push_str("</p>");
    if !r.notes.is_empty() {
        out.push_str(r#"<ul class="notes">"#);
        for n in &r.notes {
            let _ = write!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>");
    }
    out.push_str("<nav>");
    if r.has_frames {
        out.push_str(r##"<a href="#sheet">Contact sheet</a> · "##);
    }
    out.push_str(r##"<a href="#timeline">Timeline</a> · <a href="#results">Results</a>"##);
    for png in p.pngs {
        let _ = write!(
            out,
            r#" · <a href="{}">{}</a>"#,
            esc(&url_path(png)),
            esc(png)
        );
    }
    out.push_str("</nav></header>");
    if r.has_frames {
        contact_sheet(&mut out, p);
    }
    out.push_str(r#"<section id="timeline"><h2>Timeline</h2><p class="legend">One row per node, one bar per task attempt from its start to its end (time since the first start; hover a bar for the task):<span style="background:#43a047"></span>done<span style="background:#d32f2f"></span>failed<span style="background:repeating-linear-gradient(45deg,#e0e0e0 0 2px,#9e9e9e 2px 4px)"></span>superseded (requeued, or rerun by a later job)</p>"#);
    timeline_svg(&mut out, r);
    node_table(&mut out, r);
    out.push_str("</section>");
    results(&mut out, r);
    let _ = writeln!(out, "<script>{SCRIPT}</script></body></html>");
    out
}
