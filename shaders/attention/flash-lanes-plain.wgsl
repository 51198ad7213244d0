// attention/flash without subgroups: the 4 lanes of a query row sum through workgroup memory.

struct LaneIn { @builtin(local_invocation_index) li: u32 }

fn lanes_ok(lin: LaneIn) -> bool { return false; }

fn reduce4(x: vec4f, li: u32, use_sg: bool) -> vec4f { return reduce4_shared(x, li); }
