//! A line diff in the unified style (`-` reference, `+` weft), with two
//! lines of context around each change.

/// The lines of `a` and `b` as a diff; empty when they are equal.
pub fn unified(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let ops = script(&a, &b);
    let mut out = String::new();
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].0 != ' ').collect();
    let near = |i: usize| changed.iter().any(|&c| c.abs_diff(i) <= 2);
    let mut skipped = false;
    for (i, (tag, line)) in ops.iter().enumerate() {
        if near(i) {
            if skipped {
                out += "  ...\n";
                skipped = false;
            }
            out += &format!("{tag} {line}\n");
        } else {
            skipped = true;
        }
    }
    out
}

/// The edit script between `a` and `b` by longest common subsequence:
/// (' ', kept), ('-', only in a), ('+', only in b). Inputs too large for
/// the table are compared as wholes.
fn script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    if a.len().saturating_mul(b.len()) > 20_000_000 {
        let mut v: Vec<_> = a.iter().map(|l| ('-', *l)).collect();
        v.extend(b.iter().map(|l| ('+', *l)));
        return v;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if a[i] == b[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i * (m + 1) + j + 1] >= lcs[(i + 1) * (m + 1) + j]) {
            out.push(('+', b[j]));
            j += 1;
        } else {
            out.push(('-', a[i]));
            i += 1;
        }
    }
    out
}
