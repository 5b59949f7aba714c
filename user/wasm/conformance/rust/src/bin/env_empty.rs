//! std::env with nothing set: no variables, lookups fail, the current
//! directory.

use std::env;
use wasi_conformance::show;

fn main() {
    println!("{} variables", env::vars().count());
    println!("var HOME: {:?}", env::var("HOME"));
    show("current_dir", env::current_dir());
}
