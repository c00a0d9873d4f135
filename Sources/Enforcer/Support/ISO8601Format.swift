import FoundationEssentials

/// RFC 3339 UTC timestamps for operator-facing lines (logs, status, reports).
public enum ISO8601Format {
    public static func string(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
