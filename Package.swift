// swift-tools-version:6.0
// CouponStore: an embedded, crash-safe datastore for coupon campaigns and flash sales.
// No package dependencies: Foundation, Dispatch, Synchronization and Glibc only.
import PackageDescription

let package = Package(
  name: "CouponStore",
  platforms: [.macOS(.v15)],
  products: [
    .library(name: "CouponStore", targets: ["CouponStore"]),
    .executable(name: "couponstore", targets: ["CouponStoreCLI"]),
    .executable(name: "coupon-bench", targets: ["CouponBench"]),
    .executable(name: "crash-harness", targets: ["CrashHarness"]),
  ],
  targets: [
    // The generic write-ahead log: file-system seam, framing, segments, recovery scan,
    // group-commit state machine. It knows nothing about coupons.
    .target(name: "CouponLog"),
    // The coupon engine: events, in-memory state, the single writer, the public API.
    .target(name: "CouponStore", dependencies: ["CouponLog"]),
    .executableTarget(name: "CouponStoreCLI", dependencies: ["CouponStore"]),
    // A deterministic simulated disk behind the file-system seam, for crash and fault tests.
    .target(name: "CouponSimulation", dependencies: ["CouponLog"]),
    // Kills a real store process with SIGKILL, reopens, verifies (crash-harness --kills N).
    .executableTarget(name: "CrashHarness", dependencies: ["CouponStore", "CouponSimulation"]),
    .executableTarget(
      name: "CouponBench", dependencies: ["CouponStore"], path: "Benchmarks/CouponBench"),
    .testTarget(name: "CouponLogTests", dependencies: ["CouponLog"]),
    .testTarget(
      name: "CouponStoreTests", dependencies: ["CouponStore", "CouponLog", "CouponSimulation"]),
    .testTarget(name: "CouponBenchTests", dependencies: ["CouponBench"]),
    // Replays every input a fuzzer ever failed on (Fuzz/FailCases) and the seed corpora through
    // the fuzz targets' own code. The libFuzzer entry points (Entry.swift) are built by
    // Fuzz/run.sh only.
    .testTarget(
      name: "FuzzRegressionTests", dependencies: ["CouponStore", "CouponLog"], path: "Fuzz",
      exclude: [
        "APISequence/Entry.swift", "Canary/Entry.swift", "EventDecoder/Entry.swift",
        "FrameDecoder/Entry.swift", "SnapshotDecoder/Entry.swift", "SnapshotDecoder/README.md",
        "Corpus", "FailCases", "README.md",
        "ci.sh", "run.sh",
      ],
      sources: [
        "APISequence", "Canary", "EventDecoder", "FrameDecoder", "Regression", "SnapshotDecoder",
        "Support",
      ]),
  ],
  swiftLanguageModes: [.v6]
)
