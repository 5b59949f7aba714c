//! Buffered I/O of a few MB: BufWriter out, BufReader lines back, seek and
//! read at the end.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

fn main() {
    let mut w = BufWriter::new(File::create("big.txt").unwrap());
    for i in 0..200_000 {
        writeln!(w, "line {i:06} of the large file").unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let f = File::open("big.txt").unwrap();
    println!("size {}", f.metadata().unwrap().len());
    let mut lines = 0;
    let mut sum = 0u64;
    for line in BufReader::new(&f).lines() {
        let line = line.unwrap();
        sum += line.bytes().map(u64::from).sum::<u64>();
        lines += 1;
    }
    println!("lines {lines} byte sum {sum}");
    let mut f = f;
    f.seek(SeekFrom::End(-30)).unwrap();
    let mut tail = String::new();
    f.read_to_string(&mut tail).unwrap();
    println!("tail {tail:?}");
}
