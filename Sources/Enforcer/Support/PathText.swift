#if os(Linux)
import SystemPackage

/// Path arithmetic on strings, as Foundation's `NSString` path methods do it, without the part of
/// Foundation that carries ICU (issue 14): `.` and `..` stay as written, nothing is resolved
/// against the file system.
package enum PathText {
    /// The path without its last component, repeated and trailing slashes dropped: `/etc/fw/a.conf`
    /// -> `/etc/fw`, `a.conf` -> ``, `/a` -> `/` (`NSString.deletingLastPathComponent`, which gives
    /// `` for `//`).
    package static func directory(of path: String) -> String {
        FilePath(path).removingLastComponent().string
    }

    /// `component` appended to `base` with a slash between them unless `base` ends in one; the rest
    /// is kept as written (`NSString.appendingPathComponent` on Linux).
    package static func joining(_ base: String, _ component: String) -> String {
        if component.isEmpty { return base }
        if base.isEmpty { return component }
        return base.hasSuffix("/") ? base + component : base + "/" + component
    }
}
#endif
