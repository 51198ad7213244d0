// attention/flash with subgroups: the 4 lanes of a query row sum their partial dot products by
// two subgroup shuffles. That needs the row's lanes to be neighbours in one subgroup: lanes_ok
// checks, once per workgroup, that every invocation's subgroup_invocation_id is its
// local_invocation_index mod subgroup_size (subgroups of at least 4, laid out in order, as on
// every driver we know); if any is not, the whole workgroup takes the workgroup-memory path.

struct LaneIn {
  @builtin(local_invocation_index) li: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
  @builtin(subgroup_size) sg_size: u32,
}

var<workgroup> lanes_bad: atomic<u32>;

fn lanes_ok(lin: LaneIn) -> bool {
  if (lin.sg_size < 4u || lin.sg_lane != lin.li % lin.sg_size) { atomicStore(&lanes_bad, 1u); }
  return workgroupUniformLoad(&lanes_bad) == 0u;
}

// Lane l gets (x_l + x_{l^1}) + (x_{l^2} + x_{l^3}): the same sum, bit for bit, as reduce4_shared.
fn reduce4(x: vec4f, li: u32, use_sg: bool) -> vec4f {
  if (use_sg) {
    let a = x + subgroupShuffleXor(x, 1u);
    return a + subgroupShuffleXor(a, 2u);
  }
  return reduce4_shared(x, li);
}
