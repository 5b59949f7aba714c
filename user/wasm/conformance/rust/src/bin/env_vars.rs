//! std::env: every variable (sorted), lookups, a missing one.

use std::env;

fn main() {
    let mut vars: Vec<(String, String)> = env::vars().collect();
    vars.sort();
    println!("{} variables", vars.len());
    for (k, v) in vars {
        println!("{k}={v:?}");
    }
    for k in ["GREETING", "EMPTY", "WITH_EQUALS", "MISSING"] {
        println!("var {k}: {:?}", env::var(k));
    }
}
