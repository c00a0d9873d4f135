#if os(Linux)
import Foundation
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

@Suite struct DaemonStateFileTests {
    static func sample(generation: UInt32 = 7, error: String? = nil) -> EnforcedState {
        EnforcedState(
            configPath: "/etc/fwenforcer/fwenforcer.conf",
            configSHA256: SHA256.hex(of: Array("[host]\nroles = [\"CCO\"]\n".utf8)),
            appliedAt: Date(timeIntervalSince1970: 1_795_240_620),
            generation: generation,
            lastError: error.map { .init(message: $0, at: Date(timeIntervalSince1970: 1_795_240_700)) },
            setElementCounts: ["CCM_v4": 1, "AMQP_v4": 2, "AMQP_v6": 1],
            daemonPID: 4242)
    }

    @Test func roundTrip() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let file = StateFile(path: FilePath(dir("state.json")))
        #expect(try file.read() == nil)
        let state = Self.sample(error: "config line 3: unknown key \"rols\"")
        try file.write(state)
        #expect(try file.read() == state)
        let text = try #require(daemonReadFile(dir("state.json")))
        #expect(text.contains("\"appliedAt\" : \"2026-11-21T05:57:00Z\""))
        #expect(text.contains("\"formatVersion\" : 1"))
        var info = stat()
        try daemonCheck(stat(dir("state.json"), &info), "stat")
        #expect(info.st_mode & 0o777 == 0o644)
    }

    /// Replacement is a rename: a reader holding the old file keeps reading it whole, the path shows
    /// the new content, and no temporary file is left behind.
    @Test func replacementIsAtomic() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let file = StateFile(path: FilePath(dir("state.json")))
        try file.write(Self.sample(generation: 1))
        let oldReader = open(dir("state.json"), O_RDONLY | O_CLOEXEC)
        defer { close(oldReader) }
        try file.write(Self.sample(generation: 2))
        #expect(try file.read()?.generation == 2)
        let old = try JSONDecoder.state.decode(EnforcedState.self, from: Data(readAll(oldReader)))
        #expect(old.generation == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["state.json"])
    }

    /// A reader racing a writer always decodes a whole state, never a torn one.
    @Test func concurrentReadersNeverSeeAPartialFile() async throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let path = FilePath(dir("state.json"))
        try StateFile(path: path).write(Self.sample(generation: 0))
        let rounds: UInt32 = 200
        let writer = Task.detached {
            for generation in 1...rounds {
                try StateFile(path: path).write(Self.sample(generation: generation))
            }
        }
        var last: UInt32 = 0
        while last < rounds {
            let state = try #require(try StateFile(path: path).read())
            #expect(state.generation >= last)
            last = state.generation
            await Task.yield()
        }
        try await writer.value
    }

    @Test func failedWriteLeavesTheOldFile() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let file = StateFile(path: FilePath(dir("state.json")))
        try file.write(Self.sample(generation: 1))
        // A directory where the temporary file should go makes open() fail.
        try daemonCheck(mkdir(dir(".state.json.tmp.\(getpid())"), 0o755), "mkdir")
        #expect(throws: SystemCallError.self) { try file.write(Self.sample(generation: 2)) }
        #expect(try file.read()?.generation == 1)
    }

    @Test func unknownFormatIsRefused() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        try daemonWriteInPlace(dir("state.json"), "{\"formatVersion\": 99}")
        let error = try #require(throws: StateFileError.self) { try StateFile(path: FilePath(dir("state.json"))).read() }
        #expect(error.description.contains("format version 99"))
        try daemonWriteInPlace(dir("state.json"), "not json")
        #expect(throws: StateFileError.self) { try StateFile(path: FilePath(dir("state.json"))).read() }
    }

    private func readAll(_ fd: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return result }
            result += chunk[0..<count]
        }
    }
}

extension JSONDecoder {
    fileprivate static var state: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// SHA-256 against the FIPS 180-2 examples and coreutils' sha256sum.
@Suite struct DaemonSHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func fipsExamples(_ input: String, _ digest: String) {
        #expect(SHA256.hex(of: Array(input.utf8)) == digest)
    }

    @Test func millionAs() {
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(hasher.finalize().map { String(format: "%02x", $0) }.joined()
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Fed in pieces of every size (from whole blocks out of the caller's buffer to single bytes,
    /// and from a sequence without contiguous storage): the digest of the whole.
    @Test func piecesHashAsTheWhole() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let whole = SHA256.hex(of: bytes)
        for piece in [1, 3, 63, 64, 65, 127, 128, 200, 999] {
            var hasher = SHA256()
            var i = 0
            while i < bytes.count {
                hasher.update(bytes[i..<min(i + piece, bytes.count)])
                i += piece
            }
            #expect(hasher.finalize().map { String(format: "%02x", $0) }.joined() == whole, "pieces of \(piece)")
        }
        #expect(SHA256.hex(of: bytes.lazy.map { $0 }) == whole)
    }

    /// Every length around the 55/56/64-byte padding boundaries, against sha256sum.
    @Test func matchesSha256sum() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        var expected: [String] = []
        var files: [String] = []
        for length in 0...130 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ length) }
            let path = dir("\(length)")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            files.append(path)
            expected.append(SHA256.hex(of: bytes))
        }
        let result = try run(["sha256sum"] + files)
        #expect(result.status == 0)
        let sums = result.stdout.split(separator: "\n").map { String($0.prefix(64)) }
        #expect(sums == expected)
    }
}
#endif
