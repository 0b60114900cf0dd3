//! Link setup of spank_frames.so: the unused path's functions first in .text (see
//! spank/build/link_order.rs).
include!("../spank/build/link_order.rs");

fn main() {
    order_hot_symbols();
}
