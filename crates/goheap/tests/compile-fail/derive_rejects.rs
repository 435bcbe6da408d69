// What #[derive(Trace)] refuses outright, each with an error at the offending tokens.
use goheap::gc::Trace;

#[derive(Trace)]
union Either {
    a: u32,
    b: f32,
}

#[derive(Trace)]
#[repr(C, packed)]
struct Packed(u8, u32);

#[derive(Trace)]
#[trace(skip)]
struct SkipOnType(u32);

#[derive(Trace)]
struct BadField(
    #[trace(static)] u32,
    #[trace(bogus)] u8,
    #[trace(skip = true)] u8,
);

#[derive(Trace)]
enum BadVariant {
    #[trace(skip)]
    A(u32),
}

fn main() {}
