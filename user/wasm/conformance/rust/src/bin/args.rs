//! std::env::args: every argument, exactly.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("{} arguments", args.len());
    for (i, a) in args.iter().enumerate() {
        println!("{i}: {a:?}");
    }
}
