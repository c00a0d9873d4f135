// `counter`: nft sends no packet or byte values for a new counter, only an empty attribute nest,
// which is what libnftnl writes for an expression with no attributes set. Its values are kernel
// state and are not read back. (No configure or decode code is needed: see `Expression`.)
