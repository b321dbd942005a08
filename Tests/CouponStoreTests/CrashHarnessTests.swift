import Foundation
import Testing

@Suite("Crash harness: SIGKILL a real store process")
struct CrashHarnessTests {
  /// The `crash-harness` executable built beside this test bundle (`swift test` builds every
  /// product of the package first), or `$CRASH_HARNESS` if set.
  static func harnessExecutable() -> URL? {
    if let path = ProcessInfo.processInfo.environment["CRASH_HARNESS"] {
      return URL(fileURLWithPath: path)
    }
    var directories: [URL] = []
    // Linux: the test bundle is itself an executable in .build/<triple>/<configuration>/.
    if let test = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      directories.append(URL(fileURLWithPath: test).deletingLastPathComponent())
    }
    // macOS: the .xctest bundle sits in that directory.
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      directories.append(bundle.bundleURL.deletingLastPathComponent())
    }
    return directories.map { $0.appendingPathComponent("crash-harness") }.first {
      FileManager.default.isExecutableFile(atPath: $0.path)
    }
  }

  /// Timeline: the harness starts a child store process 24 times; each claims from six tasks
  /// and prints every acknowledgement, and is killed with SIGKILL while opening, while claiming,
  /// or the moment a new segment file appears. After each kill the harness reopens the store and
  /// checks every acknowledged claim and campaign, and every invariant. The seed is fixed, so the
  /// mix of kill moments is too; where exactly each kill lands is up to the scheduler.
  @Test(.timeLimit(.minutes(5)))
  func twentyFourKillsOfARealStoreProcessLoseNoAcknowledgedClaim() throws {
    let executable = try #require(
      Self.harnessExecutable(),
      "crash-harness is not built next to the tests; run `swift build` (swift test builds it)")
    let directory = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let process = Process()
    process.executableURL = executable
    process.arguments = [
      "--kills", "24", "--seed", "20261122", "--dir", directory, "--rotate", "4",
      "--max-delay-ms", "100",
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(output)")
    #expect(output.contains("24 kills ("), "\(output)")
    #expect(output.contains(" 0 problems"), "\(output)")
    #expect(output.contains("at a segment roll"), "\(output)")
    #expect(output.contains("during open"), "\(output)")
    let lines: [Substring] = output.split(separator: "\n")
    print(lines.last.map(String.init) ?? "")
  }
}
