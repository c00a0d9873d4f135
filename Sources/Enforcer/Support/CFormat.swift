#if os(Linux)
import Glibc

extension String {
    /// `arguments` formatted by the C library's `snprintf` as `format` says: what
    /// `String(format:)` gives for numbers, without the part of Foundation that carries ICU (issue
    /// 14). The daemon never calls `setlocale`, so the decimal point is `.`.
    package init(cFormat format: String, _ arguments: CVarArg...) {
        var buffer = [CChar](repeating: 0, count: 64)
        while true {
            let needed = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
            precondition(needed >= 0, "bad format \(format)")
            if Int(needed) < buffer.count {
                self = String(decoding: buffer.prefix(Int(needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return
            }
            buffer = [CChar](repeating: 0, count: Int(needed) + 1)
        }
    }
}
#endif
