//! A panic: its message on stderr, then the abort (a trap).

fn main() {
    println!("before the panic");
    let v: Vec<u8> = Vec::new();
    let i = std::env::args().count() + 2;
    println!("{}", v[i]);
}
