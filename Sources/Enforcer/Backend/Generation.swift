/// The nftables ruleset generation: a 32-bit counter the kernel bumps on every commit.
///
/// Two kernel facts shape its use: a batch that carries generation 0 is not checked at all
/// (`nfnetlink_rcv_batch` compares only a non-zero id), and the kernel never takes 0 itself when
/// the counter wraps (`while (++base_seq == 0);` in `nf_tables_commit`). So 0 is never a real
/// generation, and fwenforcer never sends it.
public enum Generation {
    /// The generation a commit checked against `generation` produces.
    public static func next(after generation: UInt32) -> UInt32 {
        let n = generation &+ 1
        return n == 0 ? 1 : n
    }
}
