import Testing

@testable import CouponBench

@Suite("Statistics")
struct StatsTests {
  @Test
  func nearestRankPercentilesPickTheSampleAtOrAboveTheRank() {
    let sorted = (1...100).map(UInt64.init)
    #expect(nearestRank(sorted, 50) == 50)
    #expect(nearestRank(sorted, 99) == 99)
    #expect(nearestRank(sorted, 99.9) == 100)
    #expect(nearestRank(sorted, 0) == 1)
    #expect(nearestRank(sorted, 100) == 100)
    #expect(nearestRank([7], 99.9) == 7)
    #expect(nearestRank([], 50) == 0)
  }

  @Test
  func spreadReportsMedianMinimumAndMaximum() {
    let odd = Spread([5, 1, 3])
    #expect(odd.median == 3 && odd.min == 1 && odd.max == 5)
    #expect(odd.values == [5, 1, 3], "values stay in run order")
    #expect(Spread([4, 1, 3, 2]).median == 2.5)
  }

  @Test
  func latencySummaryOfRunsTakesEachPercentilesMedian() {
    let runs = [
      LatencySummary(sorted: [10, 20, 30]), LatencySummary(sorted: [40, 50, 60]),
      LatencySummary(sorted: [70, 80, 90]),
    ]
    let median = LatencySummary.medianOf(runs)
    #expect(median.p50 == 50)
    #expect(median.max == 60)
    #expect(median.count == 9)
  }

  @Test
  func ratioRefusesZeroAndMissingDenominators() {
    #expect(ratio(3, 2) == 1.5)
    #expect(ratio(3, 0) == nil)
    #expect(ratio(3, nil) == nil)
    #expect(ratio(.infinity, 2) == nil)
  }

  @Test
  func closedLoopLimitIsTheSmallerOfSyncAndBandwidthBounds() {
    var sync = LatencySummary(sorted: [1_000_000])  // 1 ms: 1,000 syncs/s
    sync.count = 1
    var baseline = DiskBaseline(
      appendBytes: 64, syncLatency: sync, batchBytes: 4 << 20, bandwidthProbeBytes: 0,
      bandwidthBytesPerSecond: 50_000_000, synchronous: true)
    // 16 callers: 16,000/s from syncs; 50 MB/s ÷ 50 B = 1,000,000/s from bandwidth.
    #expect(baseline.closedLoopLimit(callers: 16, bytesPerOp: 50) == 16_000)
    // 10,000 callers: 10,000,000/s from syncs, so bandwidth binds.
    #expect(baseline.closedLoopLimit(callers: 10_000, bytesPerOp: 50) == 1_000_000)
    #expect(baseline.closedLoopLimit(callers: 2, opsPerCall: 1_000, bytesPerOp: nil) == 2_000_000)
    baseline.synchronous = false
    #expect(baseline.closedLoopLimit(callers: 16, bytesPerOp: 50) == nil, "no limit without sync")
  }
}
