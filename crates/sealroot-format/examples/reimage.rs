//! Reads a composefs image and writes it again: `reimage IN OUT`. A debugging aid for
//! checking that image -> tree -> image is byte-identical.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).expect("read input");
    let (tree, sb) = sealroot_format::erofs::read_with_superblock(&data).expect("parse");
    let opts = sealroot_format::erofs::WriteOptions {
        min_version: sb.composefs_version,
        max_version: sb.composefs_version,
    };
    let out = sealroot_format::erofs::write(&tree, &opts).expect("write");
    std::fs::write(&args[2], &out).expect("write output");
    println!("{} inodes, identical: {}", tree.inodes.len(), out == data);
}
