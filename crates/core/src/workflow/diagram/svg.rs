//! The SVG drawing: a small layered layout (in the manner of Sugiyama and dagre) and its
//! markup.
//!
//! States are placed in rows by the longest path from the initial state, after turning the
//! arrows that close a cycle around (a depth-first search from the initial state finds
//! them); such arrows are drawn upwards. Rows of states alternate with rows of arrow labels,
//! and an arrow that spans several rows passes through a placeholder in each, so labels and
//! long arrows take room like boxes do and never cover a state. The order within rows
//! comes from barycenter sweeps (the order with the fewest crossings is kept), and x
//! positions from repeated least-squares placement towards the neighbours' centres under
//! the rows' order and spacing (isotonic regression, pool-adjacent-violators). Text widths
//! are estimated from the characters, since no font is at hand. Only `+ - * /` and
//! `round` touch the numbers, so the same definition gives the same bytes on every
//! platform.

use std::fmt::Write as _;

use super::{Current, Graph, StateNode};

/// The picture of `g`, with `current` highlighted.
pub(super) fn render(g: &Graph, current: Option<Current>) -> String {
    let boxes: Vec<StateBox> = g
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| StateBox::measure(s, current.filter(|c| c.state == i)))
        .collect();
    let layout = Layout::new(g, &boxes);
    draw(g, &boxes, &layout, current)
}

const NAME: f64 = 14.0;
const STAGE: f64 = 13.0;
const SMALL: f64 = 12.0;
/// Line height, as a multiple of the font size.
const LINE: f64 = 1.4;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 8.0;
const STAGE_PAD: f64 = 8.0;
const STAGE_GAP: f64 = 20.0;
const MIN_W: f64 = 96.0;
/// Longer lines of text are wrapped at spaces.
const WRAP: f64 = 320.0;
const LABEL_WRAP: f64 = 150.0;
const MARGIN: f64 = 16.0;
/// Room above the first row for the start dot and its arrow.
const START: f64 = 32.0;
const ROW_GAP: f64 = 26.0;
const COL_GAP: f64 = 24.0;
const THIN_GAP: f64 = 12.0;
/// How far a loop (a transition back to the same state) reaches right of its box.
const LOOP: f64 = 36.0;
const SWEEPS: usize = 6;
const PLACEMENTS: usize = 8;

const STYLE: &str = r#"
.signoff-workflow{font-family:var(--ds-font-family-body,-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif)}
.signoff-workflow .sw-state{fill:var(--ds-surface-raised,#FFFFFF);stroke:var(--ds-border-bold,#758195);stroke-width:1.5px}
.signoff-workflow .sw-approval{fill:var(--ds-surface-sunken,#F7F8F9);stroke:var(--ds-border-bold,#758195);stroke-width:1.5px}
.signoff-workflow .sw-stage{fill:var(--ds-surface-raised,#FFFFFF);stroke:var(--ds-border,#091E4224);stroke-width:1px}
.signoff-workflow .sw-current{fill:var(--ds-background-selected,#E9F2FF);stroke:var(--ds-border-selected,#0C66E4);stroke-width:2px}
.signoff-workflow .sw-final{fill:none;stroke:var(--ds-border-bold,#758195);stroke-width:1px}
.signoff-workflow .sw-name{fill:var(--ds-text,#172B4D);font-size:14px;font-weight:600}
.signoff-workflow .sw-stage-name{fill:var(--ds-text,#172B4D);font-size:13px;font-weight:600}
.signoff-workflow .sw-detail{fill:var(--ds-text-subtle,#44546F);font-size:12px}
.signoff-workflow .sw-mark{fill:var(--ds-text-selected,#0C66E4);font-size:12px;font-weight:600}
.signoff-workflow .sw-edge{fill:none;stroke:var(--ds-border-bold,#758195);stroke-width:1.5px}
.signoff-workflow .sw-arrowhead{fill:var(--ds-border-bold,#758195)}
.signoff-workflow .sw-start{fill:var(--ds-text,#172B4D)}
.signoff-workflow .sw-label-bg{fill:var(--ds-surface,#FFFFFF)}
.signoff-workflow .sw-label{fill:var(--ds-text-subtlest,#626F86);font-size:12px}
"#;

/// How a line of text is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Name,
    StageName,
    Detail,
    Mark,
    Label,
}

#[derive(Debug, Clone)]
struct Line {
    text: String,
    style: Style,
    indent: f64,
}

/// A state's box, measured: its lines, and its stages with their offsets from its top.
#[derive(Debug, Clone)]
struct StateBox {
    w: f64,
    h: f64,
    lines: Vec<Line>,
    stages: Vec<StageBox>,
    current: bool,
    is_final: bool,
}

#[derive(Debug, Clone)]
struct StageBox {
    top: f64,
    h: f64,
    lines: Vec<Line>,
    current: bool,
}

/// A box of the layout: a state, an arrow's label, or the place where an arrow crosses a
/// row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    State(usize),
    Label(usize),
    Through,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// The width it takes in its row (a state with a loop takes the loop's room too).
    w: f64,
    h: f64,
    row: usize,
    /// Discovery order, to break ties deterministically.
    key: usize,
    cx: f64,
}

/// An arrow through the layout, from its upper end to its lower end.
#[derive(Debug, Clone)]
struct Chain {
    /// Drawn upwards: the arrow goes from the lower end to the upper one.
    upwards: bool,
    nodes: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Layout {
    nodes: Vec<Node>,
    rows: Vec<Vec<usize>>,
    chains: Vec<Chain>,
    /// Edges from a state to itself.
    loops: Vec<usize>,
    row_top: Vec<f64>,
    row_h: Vec<f64>,
    width: f64,
    height: f64,
}

impl StateBox {
    fn measure(s: &StateNode, current: Option<Current>) -> StateBox {
        let mut lines = Vec::new();
        if s.stages.is_empty() {
            push_wrapped(&mut lines, &s.name, Style::Name, 0.0);
            for d in &s.details {
                push_wrapped(&mut lines, d, Style::Detail, 0.0);
            }
            if current.is_some() {
                push_wrapped(&mut lines, "current state", Style::Mark, 0.0);
            }
            let w = (widest(&lines) + 2.0 * PAD_X).max(MIN_W);
            let h = height(&lines) + 2.0 * PAD_Y;
            return StateBox {
                w,
                h,
                lines,
                stages: Vec::new(),
                current: current.is_some(),
                is_final: s.is_final,
            };
        }
        push_wrapped(&mut lines, &s.name, Style::Name, 0.0);
        if !s.details.is_empty() {
            push_wrapped(&mut lines, &s.details.join(" · "), Style::Detail, 0.0);
        }
        if current.is_some() {
            push_wrapped(&mut lines, "current state", Style::Mark, 0.0);
        }
        let mut top = PAD_Y + height(&lines) + 6.0;
        let mut inner = widest(&lines);
        let mut stages = Vec::new();
        for (k, st) in s.stages.iter().enumerate() {
            let mut sl = Vec::new();
            push_wrapped(&mut sl, &st.title, Style::StageName, 0.0);
            for d in &st.details {
                push_wrapped(&mut sl, d, Style::Detail, 0.0);
            }
            for g in &st.groups {
                push_wrapped(&mut sl, g, Style::Detail, 0.0);
            }
            let here = current.is_some_and(|c| c.stage == Some(k));
            if here {
                push_wrapped(&mut sl, "current stage", Style::Mark, 0.0);
            }
            inner = inner.max(widest(&sl) + 2.0 * STAGE_PAD);
            let h = height(&sl) + 2.0 * STAGE_PAD;
            stages.push(StageBox {
                top,
                h,
                lines: sl,
                current: here,
            });
            top += h + STAGE_GAP;
        }
        StateBox {
            w: (inner + 2.0 * PAD_X).max(MIN_W),
            h: top - STAGE_GAP + PAD_X,
            lines,
            stages,
            current: current.is_some(),
            is_final: s.is_final,
        }
    }
}

impl Layout {
    fn new(g: &Graph, boxes: &[StateBox]) -> Layout {
        let n = g.states.len();
        let labels: Vec<Vec<Line>> = g.edges.iter().map(|e| label_lines(&e.label())).collect();
        let mut nodes: Vec<Node> = boxes
            .iter()
            .enumerate()
            .map(|(i, b)| Node {
                kind: Kind::State(i),
                w: b.w,
                h: b.h,
                row: 0,
                key: i,
                cx: 0.0,
            })
            .collect();
        let mut loops = Vec::new();
        for (e, edge) in g.edges.iter().enumerate() {
            if edge.from == edge.to {
                nodes[edge.from].w += LOOP + widest(&labels[e]) + 12.0;
                loops.push(e);
            }
        }

        // The arrows that close a cycle are turned around for the layering.
        let upwards: Vec<bool> = g.edges.iter().map(|e| e.back).collect();
        let discovered = &g.discovered;
        for (i, node) in nodes.iter_mut().enumerate().take(n) {
            node.key = discovered[i];
        }

        // Ranks: the longest path from the sources of the arrows as turned.
        let ends = |e: usize| {
            let edge = &g.edges[e];
            if upwards[e] {
                (edge.to, edge.from)
            } else {
                (edge.from, edge.to)
            }
        };
        let dag: Vec<usize> = (0..g.edges.len())
            .filter(|&e| g.edges[e].from != g.edges[e].to)
            .collect();
        let mut indegree = vec![0usize; n];
        for &e in &dag {
            indegree[ends(e).1] += 1;
        }
        let mut rank = vec![0usize; n];
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        while let Some(pos) = (0..ready.len()).min_by_key(|&p| ready[p]) {
            let u = ready.swap_remove(pos);
            for &e in &dag {
                let (a, b) = ends(e);
                if a == u {
                    rank[b] = rank[b].max(rank[u] + 1);
                    indegree[b] -= 1;
                    if indegree[b] == 0 {
                        ready.push(b);
                    }
                }
            }
        }
        let rows_n = 2 * rank.iter().copied().max().unwrap_or(0) + 1;
        for (i, node) in nodes.iter_mut().enumerate().take(n) {
            node.row = 2 * rank[i];
        }

        // Chains: an arrow's label sits in the row after its upper end, and a placeholder
        // takes its place in each further row it crosses.
        let mut chains = Vec::new();
        for &e in &dag {
            let (a, b) = ends(e);
            let mut path = vec![a];
            for row in nodes[a].row + 1..nodes[b].row {
                let first = row == nodes[a].row + 1;
                let (kind, w, h) = if first {
                    (
                        Kind::Label(e),
                        widest(&labels[e]) + 8.0,
                        height(&labels[e]) + 4.0,
                    )
                } else {
                    (Kind::Through, 8.0, 0.0)
                };
                path.push(nodes.len());
                nodes.push(Node {
                    kind,
                    w,
                    h,
                    row,
                    key: n + e,
                    cx: 0.0,
                });
            }
            path.push(b);
            chains.push(Chain {
                upwards: upwards[e],
                nodes: path,
            });
        }

        let mut ups: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut downs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for c in &chains {
            for pair in c.nodes.windows(2) {
                downs[pair[0]].push(pair[1]);
                ups[pair[1]].push(pair[0]);
            }
        }
        let rows = order(&nodes, rows_n, &ups, &downs);
        let mut layout = Layout {
            nodes,
            rows,
            chains,
            loops,
            row_top: Vec::new(),
            row_h: Vec::new(),
            width: 0.0,
            height: 0.0,
        };
        layout.place(&ups, &downs);
        layout
    }

    /// x positions: each row packed and centred, then pulled towards the neighbours above,
    /// then below, a few times, and once towards both.
    fn place(&mut self, ups: &[Vec<usize>], downs: &[Vec<usize>]) {
        for r in 0..self.rows.len() {
            let desired = vec![0.0; self.rows[r].len()];
            self.place_row(r, &desired);
        }
        let toward = |layout: &Layout, r: usize, sides: &[&[Vec<usize>]]| -> Vec<f64> {
            layout.rows[r]
                .iter()
                .map(|&m| {
                    let (mut sum, mut count) = (0.0, 0.0);
                    for side in sides {
                        for &o in &side[m] {
                            sum += layout.nodes[o].cx;
                            count += 1.0;
                        }
                    }
                    if count > 0.0 {
                        sum / count
                    } else {
                        layout.nodes[m].cx
                    }
                })
                .collect()
        };
        for _ in 0..PLACEMENTS {
            for r in 1..self.rows.len() {
                let d = toward(self, r, &[ups]);
                self.place_row(r, &d);
            }
            for r in (0..self.rows.len().saturating_sub(1)).rev() {
                let d = toward(self, r, &[downs]);
                self.place_row(r, &d);
            }
        }
        for r in 0..self.rows.len() {
            let d = toward(self, r, &[ups, downs]);
            self.place_row(r, &d);
        }

        let left = self
            .nodes
            .iter()
            .map(|m| m.cx - m.w / 2.0)
            .fold(f64::INFINITY, f64::min);
        let right = self
            .nodes
            .iter()
            .map(|m| m.cx + m.w / 2.0)
            .fold(f64::NEG_INFINITY, f64::max);
        for m in &mut self.nodes {
            m.cx += MARGIN - left;
        }
        self.width = right - left + 2.0 * MARGIN;
        let mut y = MARGIN + START;
        for row in &self.rows {
            let h = row.iter().map(|&m| self.nodes[m].h).fold(0.0, f64::max);
            self.row_top.push(y);
            self.row_h.push(h);
            y += h + ROW_GAP;
        }
        self.height = y - ROW_GAP + MARGIN;
    }

    /// Places row `r` as close as its order and spacing allow to the `desired` centres, in
    /// the least-squares sense: with `o` the packed offsets, the centres minus `o` must not
    /// decrease, which is isotonic regression, solved by pooling adjacent violators.
    fn place_row(&mut self, r: usize, desired: &[f64]) {
        let row = &self.rows[r];
        let mut offset = vec![0.0; row.len()];
        for i in 1..row.len() {
            let (a, b) = (&self.nodes[row[i - 1]], &self.nodes[row[i]]);
            let gap = match (a.kind, b.kind) {
                (Kind::State(_), Kind::State(_)) => COL_GAP,
                _ => THIN_GAP,
            };
            offset[i] = offset[i - 1] + (a.w + b.w) / 2.0 + gap;
        }
        // Blocks of (sum of targets, count).
        let mut blocks: Vec<(f64, f64)> = Vec::new();
        for (i, d) in desired.iter().enumerate() {
            blocks.push((d - offset[i], 1.0));
            while blocks.len() >= 2 {
                let (s2, c2) = blocks[blocks.len() - 1];
                let (s1, c1) = blocks[blocks.len() - 2];
                if s1 / c1 <= s2 / c2 {
                    break;
                }
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (s1 + s2, c1 + c2);
            }
        }
        let mut i = 0;
        for (sum, count) in blocks {
            let mean = sum / count;
            // `count` is a whole number of members.
            for _ in 0..count as usize {
                self.nodes[row[i]].cx = mean + offset[i];
                i += 1;
            }
        }
    }

    /// The top edge of node `m`'s box (boxes are centred in their row).
    fn top(&self, m: usize) -> f64 {
        let node = &self.nodes[m];
        self.row_top[node.row] + (self.row_h[node.row] - node.h) / 2.0
    }

    /// The left edge of state `m`'s box (the room for a loop is on its right).
    fn left(&self, m: usize) -> f64 {
        self.nodes[m].cx - self.nodes[m].w / 2.0
    }
}

/// Orders the rows: a first order by the barycentres of the nodes above, then sweeps down
/// and up; the order with the fewest crossings wins (the first one found, on a tie).
fn order(
    nodes: &[Node],
    rows_n: usize,
    ups: &[Vec<usize>],
    downs: &[Vec<usize>],
) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); rows_n];
    for (m, node) in nodes.iter().enumerate() {
        rows[node.row].push(m);
    }
    let mut pos = vec![0.0f64; nodes.len()];
    rows[0].sort_by_key(|&m| nodes[m].key);
    for (i, &m) in rows[0].iter().enumerate() {
        pos[m] = i as f64;
    }
    for row in rows.iter_mut().skip(1) {
        sort_row(row, nodes, &mut pos, ups, true);
    }
    let mut best = (crossings(&rows, &pos, downs), rows.clone());
    for _ in 0..SWEEPS {
        for row in rows.iter_mut().skip(1) {
            sort_row(row, nodes, &mut pos, ups, false);
        }
        // Upwards from the row above the last.
        for row in rows.iter_mut().rev().skip(1) {
            sort_row(row, nodes, &mut pos, downs, false);
        }
        let c = crossings(&rows, &pos, downs);
        if c < best.0 {
            best = (c, rows.clone());
        }
        if best.0 == 0 {
            break;
        }
    }
    best.1
}

/// Sorts a row by the mean position of each node's neighbours on one side; a node without
/// neighbours there keeps its place. Ties keep the current order (or, the first time, the
/// discovery order).
fn sort_row(row: &mut [usize], nodes: &[Node], pos: &mut [f64], side: &[Vec<usize>], first: bool) {
    let key = |m: usize| -> f64 {
        if side[m].is_empty() {
            return pos[m];
        }
        side[m].iter().map(|&o| pos[o]).sum::<f64>() / side[m].len() as f64
    };
    let mut keyed: Vec<(f64, usize, usize)> = row
        .iter()
        .map(|&m| {
            let tie = if first { nodes[m].key } else { pos[m] as usize };
            (key(m), tie, m)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (i, (_, _, m)) in keyed.into_iter().enumerate() {
        row[i] = m;
        pos[m] = i as f64;
    }
}

fn crossings(rows: &[Vec<usize>], pos: &[f64], downs: &[Vec<usize>]) -> usize {
    let mut total = 0;
    for row in rows {
        let links: Vec<(f64, f64)> = row
            .iter()
            .flat_map(|&a| downs[a].iter().map(move |&b| (pos[a], pos[b])))
            .collect();
        for (i, x) in links.iter().enumerate() {
            for y in &links[i + 1..] {
                if (x.0 - y.0) * (x.1 - y.1) < 0.0 {
                    total += 1;
                }
            }
        }
    }
    total
}

fn draw(g: &Graph, boxes: &[StateBox], l: &Layout, current: Option<Current>) -> String {
    let arrow = format!("sw-arrow-{}", g.hash12);
    let mut out = String::new();
    let (w, h) = (num(l.width), num(l.height));
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"signoff-workflow\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    let mut title = format!("Workflow {}", g.name);
    if let Some(c) = current {
        let _ = write!(title, ", current state {}", g.states[c.state].name);
        if let Some(k) = c.stage {
            let _ = write!(title, ", {}", g.states[c.state].stages[k].title);
        }
    }
    let _ = writeln!(out, "<title>{}</title>", xml(&title));
    let _ = writeln!(out, "<style>{STYLE}</style>");
    let _ = writeln!(
        out,
        "<defs><marker id=\"{arrow}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path class=\"sw-arrowhead\" d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
    );
    let marker = format!("marker-end=\"url(#{arrow})\"");

    // Arrows first, so boxes and labels sit on top of them.
    let _ = writeln!(out, "<g class=\"sw-edges\">");
    let initial = g.initial;
    let (x, top) = (l.left(initial) + boxes[initial].w / 2.0, l.top(initial));
    let _ = writeln!(
        out,
        "<circle class=\"sw-start\" cx=\"{}\" cy=\"{}\" r=\"6\"/>",
        num(x),
        num(top - START + 6.0)
    );
    let _ = writeln!(
        out,
        "<path class=\"sw-edge\" d=\"M{},{} L{},{}\" {marker}/>",
        num(x),
        num(top - START + 12.0),
        num(x),
        num(top - 1.0)
    );
    let ports = ports(l, boxes);
    for (c, chain) in l.chains.iter().enumerate() {
        let mut points = vec![(
            ports[c].0,
            l.top(chain.nodes[0]) + l.nodes[chain.nodes[0]].h,
        )];
        for &m in &chain.nodes[1..chain.nodes.len() - 1] {
            let node = &l.nodes[m];
            points.push((node.cx, l.row_top[node.row]));
            points.push((node.cx, l.row_top[node.row] + l.row_h[node.row]));
        }
        points.push((ports[c].1, l.top(chain.nodes[chain.nodes.len() - 1]) - 1.0));
        if chain.upwards {
            // The arrow points at the upper box's bottom and starts at the lower one's top.
            points[0].1 += 1.0;
            if let Some(start) = points.last_mut() {
                start.1 += 1.0;
            }
            points.reverse();
        }
        let _ = writeln!(
            out,
            "<path class=\"sw-edge\" d=\"{}\" {marker}/>",
            path(&points)
        );
    }
    for &e in &l.loops {
        let s = g.edges[e].from;
        let (right, top, bh) = (l.left(s) + boxes[s].w, l.top(s), boxes[s].h);
        let (y0, y1) = if boxes[s].stages.is_empty() {
            (top + bh * 0.3, top + bh * 0.7)
        } else {
            (top + 14.0, top + 38.0)
        };
        let _ = writeln!(
            out,
            "<path class=\"sw-edge\" d=\"M{},{} C{},{} {},{} {},{}\" {marker}/>",
            num(right),
            num(y0),
            num(right + LOOP),
            num(y0 - 8.0),
            num(right + LOOP),
            num(y1 + 8.0),
            num(right + 1.0),
            num(y1)
        );
    }
    let _ = writeln!(out, "</g>");

    let _ = writeln!(out, "<g class=\"sw-states\">");
    for (i, b) in boxes.iter().enumerate() {
        let (x, y) = (l.left(i), l.top(i));
        let class = match (b.stages.is_empty(), b.current) {
            (_, true) => "sw-state sw-current",
            (true, false) => "sw-state",
            (false, false) => "sw-approval",
        };
        let _ = writeln!(
            out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>",
            num(x),
            num(y),
            num(b.w),
            num(b.h)
        );
        if b.is_final {
            let _ = writeln!(
                out,
                "<rect class=\"sw-final\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\"/>",
                num(x + 4.0),
                num(y + 4.0),
                num(b.w - 8.0),
                num(b.h - 8.0)
            );
        }
        if b.stages.is_empty() {
            text_block(&mut out, &b.lines, x + b.w / 2.0, y + PAD_Y, true);
            continue;
        }
        text_block(&mut out, &b.lines, x + PAD_X, y + PAD_Y, false);
        let inner = b.w - 2.0 * PAD_X;
        for (k, st) in b.stages.iter().enumerate() {
            let class = if st.current {
                "sw-stage sw-current"
            } else {
                "sw-stage"
            };
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/>",
                num(x + PAD_X),
                num(y + st.top),
                num(inner),
                num(st.h)
            );
            text_block(
                &mut out,
                &st.lines,
                x + PAD_X + STAGE_PAD,
                y + st.top + STAGE_PAD,
                false,
            );
            if let Some(next) = b.stages.get(k + 1) {
                let cx = x + b.w / 2.0;
                let _ = writeln!(
                    out,
                    "<path class=\"sw-edge\" d=\"M{},{} L{},{}\" {marker}/>",
                    num(cx),
                    num(y + st.top + st.h + 2.0),
                    num(cx),
                    num(y + next.top - 1.0)
                );
            }
        }
    }
    let _ = writeln!(out, "</g>");

    let _ = writeln!(out, "<g class=\"sw-labels\">");
    for m in &l.nodes {
        let Kind::Label(e) = m.kind else { continue };
        let lines = label_lines(&g.edges[e].label());
        let y = l.row_top[m.row] + (l.row_h[m.row] - m.h) / 2.0;
        let _ = writeln!(
            out,
            "<rect class=\"sw-label-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/>",
            num(m.cx - m.w / 2.0),
            num(y),
            num(m.w),
            num(m.h)
        );
        text_block(&mut out, &lines, m.cx, y + 2.0, true);
    }
    for &e in &l.loops {
        let s = g.edges[e].from;
        let lines = label_lines(&g.edges[e].label());
        let (right, top, bh) = (l.left(s) + boxes[s].w, l.top(s), boxes[s].h);
        let mid = if boxes[s].stages.is_empty() {
            top + bh / 2.0
        } else {
            top + 26.0
        };
        let (lw, lh) = (widest(&lines) + 8.0, height(&lines) + 4.0);
        let x = right + LOOP + 4.0;
        let _ = writeln!(
            out,
            "<rect class=\"sw-label-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/>",
            num(x),
            num(mid - lh / 2.0),
            num(lw),
            num(lh)
        );
        text_block(&mut out, &lines, x + lw / 2.0, mid - lh / 2.0 + 2.0, true);
    }
    let _ = writeln!(out, "</g>");
    let _ = writeln!(out, "</svg>");
    out
}

/// For each chain, the x of its ends on the boxes: the arrows leaving a box's bottom (or
/// top) are spread along it in the order of where they go, so arrows between the same
/// two states run side by side instead of on top of each other.
fn ports(l: &Layout, boxes: &[StateBox]) -> Vec<(f64, f64)> {
    let mut result = vec![(0.0, 0.0); l.chains.len()];
    for (s, b) in boxes.iter().enumerate() {
        let center = l.left(s) + b.w / 2.0;
        for bottom in [true, false] {
            let mut here: Vec<(f64, usize)> = l
                .chains
                .iter()
                .enumerate()
                .filter_map(|(c, chain)| {
                    let len = chain.nodes.len();
                    let (end, next) = if bottom {
                        (chain.nodes[0], chain.nodes[1])
                    } else {
                        (chain.nodes[len - 1], chain.nodes[len - 2])
                    };
                    (end == s).then(|| (l.nodes[next].cx, c))
                })
                .collect();
            here.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let n = here.len();
            let span = if n > 1 {
                (b.w - 24.0).min(24.0 * (n - 1) as f64).max(0.0)
            } else {
                0.0
            };
            for (k, (_, c)) in here.into_iter().enumerate() {
                let x = if n > 1 {
                    center - span / 2.0 + span * k as f64 / (n - 1) as f64
                } else {
                    center
                };
                if bottom {
                    result[c].0 = x;
                } else {
                    result[c].1 = x;
                }
            }
        }
    }
    result
}

/// A path through `points`: straight where a pair is vertical (through a row), an S-curve
/// with vertical tangents between rows.
fn path(points: &[(f64, f64)]) -> String {
    let mut d = format!("M{},{}", num(points[0].0), num(points[0].1));
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x0 == x1 {
            let _ = write!(d, " L{},{}", num(x1), num(y1));
        } else {
            let mid = (y0 + y1) / 2.0;
            let _ = write!(
                d,
                " C{},{} {},{} {},{}",
                num(x0),
                num(mid),
                num(x1),
                num(mid),
                num(x1),
                num(y1)
            );
        }
    }
    d
}

/// Writes `lines` from `top` down, centred on `x` or starting at it.
fn text_block(out: &mut String, lines: &[Line], x: f64, top: f64, centred: bool) {
    let mut y = top;
    for line in lines {
        let size = line.style.size();
        // The baseline of a line of height size × LINE, text centred in it.
        let baseline = y + size * LINE / 2.0 + size * 0.35;
        let anchor = if centred {
            " text-anchor=\"middle\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<text class=\"{}\" x=\"{}\" y=\"{}\"{anchor}>{}</text>",
            line.style.class(),
            num(if centred { x } else { x + line.indent }),
            num(baseline),
            xml(&line.text)
        );
        y += size * LINE;
    }
}

impl Style {
    fn size(self) -> f64 {
        match self {
            Style::Name => NAME,
            Style::StageName => STAGE,
            Style::Detail | Style::Mark | Style::Label => SMALL,
        }
    }

    fn bold(self) -> bool {
        matches!(self, Style::Name | Style::StageName | Style::Mark)
    }

    fn class(self) -> &'static str {
        match self {
            Style::Name => "sw-name",
            Style::StageName => "sw-stage-name",
            Style::Detail => "sw-detail",
            Style::Mark => "sw-mark",
            Style::Label => "sw-label",
        }
    }
}

fn label_lines(text: &str) -> Vec<Line> {
    wrap(text, Style::Label, LABEL_WRAP)
        .into_iter()
        .map(|text| Line {
            text,
            style: Style::Label,
            indent: 0.0,
        })
        .collect()
}

/// Adds `text` as lines of at most [`WRAP`] pixels; continuation lines are indented.
fn push_wrapped(lines: &mut Vec<Line>, text: &str, style: Style, indent: f64) {
    for (k, part) in wrap(text, style, WRAP).into_iter().enumerate() {
        lines.push(Line {
            text: part,
            style,
            indent: if k == 0 || style == Style::Name {
                indent
            } else {
                indent + 10.0
            },
        });
    }
}

/// Greedy wrapping at spaces; a word wider than the limit is cut between characters.
fn wrap(text: &str, style: Style, max: f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if text_width(&candidate, style) <= max {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in word.chars() {
            line.push(c);
            if text_width(&line, style) > max && line.chars().count() > 1 {
                let last = line.pop().expect("two characters");
                lines.push(std::mem::take(&mut line));
                line.push(last);
            }
        }
    }
    lines.push(line);
    lines
}

fn widest(lines: &[Line]) -> f64 {
    lines
        .iter()
        .map(|l| text_width(&l.text, l.style) + l.indent)
        .fold(0.0, f64::max)
}

fn height(lines: &[Line]) -> f64 {
    lines.iter().map(|l| l.style.size() * LINE).sum()
}

/// An estimate of the width of `text` in a sans-serif font, generous rather than tight:
/// wide characters (CJK, emoji) take a full em, narrow ones about a third.
fn text_width(text: &str, style: Style) -> f64 {
    let ems: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | 'I' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' => 0.32,
            'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' => 0.42,
            'm' | 'w' | 'M' | 'W' | '@' | '%' => 0.9,
            'A'..='Z' => 0.7,
            c if is_wide(c) => 1.0,
            _ => 0.6,
        })
        .sum();
    ems * style.size() * if style.bold() { 1.06 } else { 1.0 }
}

fn is_wide(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1FAFF
        | 0x20000..=0x3FFFD)
}

/// A coordinate with at most one decimal, `-0` written `0`.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0 + 0.0;
    format!("{r}")
}

/// Text for XML content and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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
