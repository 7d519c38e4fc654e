package sluice

// ChunkPlan lists the sizes of prototype chunks to hand out for one request:
// repeatedly the largest size of the mix that still fits in what is left of
// want, at most max chunks, never more than want in total. sizes need not be
// sorted; sizes ≤ 0 are ignored.
func ChunkPlan(want int64, sizes []int64, max int) []int64 {
	var plan []int64
	left := want
	for max <= 0 || len(plan) < max {
		best := int64(0)
		for _, s := range sizes {
			if s > 0 && s <= left && s > best {
				best = s
			}
		}
		if best == 0 {
			break
		}
		plan = append(plan, best)
		left -= best
	}
	return plan
}
