// One harness for every target of Enforcer's FuzzTarget, chosen by FWENFORCER_FUZZ_TARGET.
// Built by `make fuzz` with -sanitize=fuzzer and -D FUZZING: libFuzzer's main drives
// LLVMFuzzerTestOneInput. In a normal build the same file is a replayer
// (`fwenforcer-fuzz TARGET FILE...`), so the target always compiles with the package.
@_spi(Fuzzing) import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// To stderr (fd 2): Swift 6 refuses the C global `stderr`.
func complain(_ message: String) {
    var line = Array((message + "\n").utf8)
    _ = write(2, &line, line.count)
}

#if FUZZING
nonisolated(unsafe) private var target: FuzzTarget = .config

/// libFuzzer's driver (compiler-rt's FuzzerInterface.h), called with the test function instead of
/// through libFuzzer's own main: SwiftPM links an executable's main to `<module>_main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>,
               _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("fwenforcer_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = getenv("FWENFORCER_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
        complain("FWENFORCER_FUZZ_TARGET must be one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        return 2
    }
    target = chosen
    var argc = argc
    var argv = argv
    return runDriver(&argc, &argv) { data, size in
        target.run(UnsafeBufferPointer(start: data, count: size))
        return 0
    }
}
#else
@main
enum Replay {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            complain("usage: fwenforcer-fuzz {\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))} FILE...")
            exit(2)
        }
        for path in arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { complain("\(path): cannot open"); exit(1) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while case let n = fread(&chunk, 1, chunk.count, file), n > 0 { bytes += chunk[0..<n] }
            fclose(file)
            bytes.withUnsafeBufferPointer { target.run($0) }
        }
    }
}
#endif
