import CouponStore
import Foundation

/// `inspect`, `verify`, `snapshot`, `dump`.
enum Tools {
  static func directoryArgument(_ arguments: [String], usage: String) throws -> String {
    guard arguments.count == 1, let directory = arguments.first, !directory.hasPrefix("-") else {
      throw UsageError(message: "usage: \(usage)")
    }
    guard FileManager.default.fileExists(atPath: directory) else {
      throw UsageError(message: "no such directory: \(directory)")
    }
    return directory
  }

  static func inspect(_ arguments: [String]) async throws -> Int32 {
    if arguments.contains("--code") { return try BookTools.inspectCoupon(arguments) }
    let directory = try directoryArgument(arguments, usage: "couponstore inspect DIR")
    let report = try CouponStore.inspect(directory: directory, progress: ProgressLine.handler())
    ProgressLine.finish()
    let stats = report.statistics
    print("store       \(directory)")
    print("campaigns   \(stats.campaigns)")
    print("coupons     \(stats.coupons) (issued \(stats.issued), users \(stats.users))")
    print(
      "log         \(stats.segments) segment(s), \(stats.logBytes) bytes, last sequence \(stats.lastSequence)"
    )
    if report.tornTailBytes > 0 {
      print("torn tail   \(report.tornTailBytes) bytes (cut on next open)")
    }
    for segment in report.segments {
      print("  \(segment.path)  \(segment.bytes) bytes")
    }
    print("snapshots   \(report.snapshots.count)")
    for snapshot in report.snapshots {
      let note = snapshot.damage.map { "  DAMAGED: \($0)" } ?? (snapshot.isUsed ? "  (used)" : "")
      print(
        "  \(snapshot.path)  \(snapshot.bytes) bytes, through sequence \(snapshot.sequence)\(note)")
    }
    if !report.campaigns.isEmpty {
      print("")
      print("id                name                      stock     issued    remaining limit")
      for campaign in report.campaigns {
        print(
          [
            pad(campaign.id, 17), pad(campaign.name, 25), pad("\(campaign.stock)", 9),
            pad("\(campaign.issued)", 9), pad("\(campaign.remaining)", 9),
            "\(campaign.perUserLimit)",
          ].joined(separator: " "))
      }
    }
    return 0
  }

  static func verify(_ arguments: [String]) async throws -> Int32 {
    let directory = try directoryArgument(arguments, usage: "couponstore verify DIR")
    do {
      let report = try CouponStore.inspect(
        directory: directory, verifySnapshots: true, progress: ProgressLine.handler())
      ProgressLine.finish()
      for problem in report.problems { print("problem: \(problem)") }
      if report.tornTailBytes > 0 {
        print(
          "note: a torn tail of \(report.tornTailBytes) bytes (a crash mid-write) is cut on next open"
        )
      }
      for path in report.unfinishedSnapshots {
        print("note: \(path) is an unfinished snapshot (a crash while writing it); deleted on open")
      }
      if report.problems.isEmpty {
        print(
          "ok: \(report.statistics.lastSequence) records, \(report.campaigns.count) campaigns, "
            + "\(report.statistics.issued) coupons issued, \(report.snapshots.count) snapshot(s); "
            + "every checksum and invariant holds")
        return 0
      }
      return 1
    } catch {
      ProgressLine.finish()
      print("problem: \(error)")
      return 1
    }
  }

  static func snapshot(_ arguments: [String]) async throws -> Int32 {
    let directory = try directoryArgument(arguments, usage: "couponstore snapshot DIR")
    var options = CouponStore.Options()
    options.openProgress = ProgressLine.handler()
    let store = try await CouponStore.open(directory: directory, options: options)
    ProgressLine.finish()
    do {
      let info = try await store.snapshot()
      try await store.close()
      if info.sequence == 0 {
        print("nothing to snapshot: the store has no records")
      } else {
        print("snapshot    \(info.path)")
        print("covers      log records 1–\(info.sequence)")
        print("size        \(info.bytes) bytes")
      }
      return 0
    } catch {
      try? await store.close()
      throw error
    }
  }

  static func dump(_ arguments: [String]) async throws -> Int32 {
    let directory = try directoryArgument(arguments, usage: "couponstore dump DIR")
    try CouponStore.dump(directory: directory) { line in print(line) }
    return 0
  }

  static func pad(_ text: String, _ width: Int) -> String {
    text.count >= width
      ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
  }
}

/// A usage mistake: printed, exit status 2.
struct UsageError: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// A single self-overwriting progress line on standard error, for long operations.
enum ProgressLine {
  static func handler() -> @Sendable (CouponStore.OpenProgress) -> Void {
    { progress in
      guard progress.bytesTotal > 0 else { return }
      let percent = Double(progress.bytesDone) * 100 / Double(progress.bytesTotal)
      let phase = progress.phase == .loadingSnapshot ? "loading snapshot" : "replaying log"
      let line =
        "\r" + phase
        + String(
          format: ": %5.1f%% (%lld of %lld bytes)\u{1B}[K", percent, progress.bytesDone,
          progress.bytesTotal)
      FileHandle.standardError.write(Data(line.utf8))
    }
  }

  static func finish() {
    FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
  }
}
