// Seeded crash, fault and corruption scenarios on the simulated disk (see SimulationDriver.swift).
//
//   swift test --filter Simulation                              the fixed seeds (CI)
//   SIMULATION_SEED=1234 swift test --filter Simulation         one seed, e.g. from a failure
//   SIMULATION_SEEDS=5000 swift test --filter Simulation        5,000 random seeds (soak)
//
// A failure prints its seed, what happened, the last disk operations and the command above that
// replays it.

import CouponSimulation
import Foundation
import Testing

@testable import CouponStore

enum SimulationEnvironment {
  /// `SIMULATION_SEED`: run this one seed instead of the fixed set.
  static let seed: UInt64? = ProcessInfo.processInfo.environment["SIMULATION_SEED"].flatMap {
    UInt64($0)
  }
  /// `SIMULATION_SEEDS`: run this many random seeds instead of the fixed set.
  static let seeds: Int? = ProcessInfo.processInfo.environment["SIMULATION_SEEDS"].flatMap {
    Int($0)
  }
  static var isCustom: Bool { seed != nil || seeds != nil }
}

@Suite("Simulation: crashes, faults and bit flips on a simulated disk")
struct SimulationTests {
  /// Seeds 1 ... fixedSeedCount run in CI, spread over `chunks` parallel test cases.
  static let fixedSeedCount: UInt64 = 640
  static let chunks = 8

  /// Runs `seeds` one after the other, records every failing one as an issue with its report,
  /// and returns the totals.
  static func run(_ seeds: [UInt64], label: String) async -> SimulationStats {
    var stats = SimulationStats()
    let started = ContinuousClock.now
    var slowest: (seed: UInt64, seconds: Double) = (0, 0)
    for seed in seeds {
      let seedStarted = ContinuousClock.now
      let result = await Simulation.run(seed: seed)
      let seedSeconds = (ContinuousClock.now - seedStarted) / .seconds(1)
      if seedSeconds > slowest.seconds { slowest = (seed, seedSeconds) }
      stats.add(result.stats)
      if !result.violations.isEmpty {
        print(result.report)
        Issue.record(Comment(rawValue: result.report))
      }
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    print(
      "simulation \(label): \(stats.summary); \(String(format: "%.1f", seconds)) s, "
        + "\(String(format: "%.1f", Double(seeds.count) / max(seconds, 0.001))) scenarios/s; "
        + "slowest: seed \(slowest.seed), \(String(format: "%.2f", slowest.seconds)) s")
    return stats
  }

  /// The CI run: every guarantee holds for the fixed seeds.
  @Test(
    .enabled(if: !SimulationEnvironment.isCustom), .timeLimit(.minutes(10)),
    arguments: 0..<chunks)
  func fixedSeedsKeepEveryGuarantee(chunk: Int) async {
    let seeds = stride(from: UInt64(chunk) + 1, through: Self.fixedSeedCount, by: Self.chunks)
    let stats = await Self.run(Array(seeds), label: "seeds ≡ \(chunk + 1) mod \(Self.chunks)")
    // The fixed set must exercise what it claims to.
    #expect(stats.crashes > 0)
    #expect(stats.crashesMidWorkload > 0)
    #expect(stats.faultsInjected > 0)
    #expect(stats.bitFlips > 0)
  }

  /// The soak run, or one seed to reproduce a failure.
  @Test(.enabled(if: SimulationEnvironment.isCustom))
  func requestedSeedsKeepEveryGuarantee() async {
    var seeds: [UInt64] = []
    if let seed = SimulationEnvironment.seed { seeds.append(seed) }
    if let count = SimulationEnvironment.seeds {
      var system = SystemRandomNumberGenerator()
      seeds += (0..<count).map { _ in system.next() }
    }
    // Two scenarios at a time: the engine's threads block in the simulated disk's lock, so two
    // keep both cores busy.
    let lanes = 2
    let totals = await withTaskGroup(of: SimulationStats.self) { group in
      for lane in 0..<lanes {
        let mine = seeds.enumerated().filter { $0.offset % lanes == lane }.map(\.element)
        group.addTask { await Self.run(mine, label: "lane \(lane)") }
      }
      var totals = SimulationStats()
      for await stats in group { totals.add(stats) }
      return totals
    }
    print("simulation soak: \(seeds.count) seeds, \(totals.summary)")
  }

  /// Regression (found by seeds 3, 5, 7 and most others on their first crash): the store synced
  /// its directory's entries but never the parent, so the directory's own name, and with it
  /// every acknowledged write, could vanish in a power loss.
  @Test func theStoreDirectorySurvivesAPowerLossRightAfterTheFirstAcknowledgedWrite() async throws {
    let disk = SimulatedFileSystem(seed: 1)
    try disk.createDirectory("/srv")
    try disk.syncDirectory("/")
    var options = CouponStore.Options()
    options.fileSystem = disk
    let store = try await CouponStore.open(directory: "/srv/store", options: options)
    _ = try await store.createCampaign(CampaignSpec(id: "spring", name: "Spring", stock: 1))
    var random = SimulationRandom(seed: 1)
    let image = disk.crash(policy: .dropUnsynced, random: &random)
    try? await store.close()
    options.fileSystem = image
    let reopened = try await CouponStore.open(directory: "/srv/store", options: options)
    #expect(try await reopened.campaign("spring") != nil)
    try await reopened.close()
    #expect(CouponStore.parentDirectory(of: "/srv/store/") == "/srv")
    #expect(CouponStore.parentDirectory(of: "/store") == "/")
    #expect(CouponStore.parentDirectory(of: "store") == ".")
    #expect(CouponStore.parentDirectory(of: "a/b") == "a")
  }

  /// Regression (soak seed 9254496537093291022, 2026-12-04): fail-at-N predicted its trials from
  /// a model that still held the calls life 0 had in flight at its crash. A lock among them had
  /// survived the crash, so the trial's same lock was answered `alreadyLocked` where the model
  /// expected `done`. The store was right; the model is now settled on a recovery of the crashed
  /// disk before the trials start.
  @Test func failAtNTrialsStartFromASettledModel() async {
    let seed: UInt64 = 9_254_496_537_093_291_022
    #expect(Simulation(seed: seed).kind == .failAtN)
    let result = await Simulation.run(seed: seed)
    #expect(result.violations == [])
    #expect(result.story.contains { $0.hasPrefix("fail-at-N: 1 call(s) in flight at the crash") })
  }

  /// The canary: a store that acknowledges before `fdatasync` loses acknowledged writes in a
  /// crash, and the simulator must say so within the CI seeds. Proof that it can fail.
  @Test func canaryAcknowledgingBeforeSyncIsCaughtWithinTheFixedSeeds() async {
    let caught: SimulationResult? = await Writer.$canaryAcknowledgeBeforeSync.withValue(true) {
      for seed in 1...Self.fixedSeedCount where Simulation(seed: seed).kind == .crash {
        let result = await Simulation.run(seed: seed)
        if !result.violations.isEmpty { return result }
      }
      return nil
    }
    guard let caught else {
      Issue.record("the simulator did not catch a store that acknowledges before fdatasync")
      return
    }
    #expect(caught.violations.contains { $0.contains("is missing") || $0.contains("lost") })
    print("canary caught by seed \(caught.seed): \(caught.violations[0])")
  }
}
