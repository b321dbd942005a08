// The child: a store process that claims until it is killed, reporting every acknowledgement.
//
// Protocol (one line each, written to stdout after the call returned, so the parent's list is a
// subset of what was acknowledged):
//   READY <records replayed> <torn tail bytes cut> <snapshots 0|1>
//   C <campaign> <stock> <perUserLimit>       a campaign whose creation was acknowledged
//   A <campaign> <user or -> <code>           a claim that returned `.claimed`
// Lines are written whole with one `write(2)` of at most PIPE_BUF bytes, which POSIX makes atomic
// on a pipe, so concurrent tasks never interleave within a line; a kill can only cut the stream
// between two writes, and the parent ignores a trailing partial line anyway.

import CouponSimulation
import CouponStore
import Foundation
import Glibc
import Synchronization

enum Child {
  struct Settings {
    var directory = ""
    var seed: UInt64 = 0
    var tag = "0"
  }

  /// Campaigns the child's tasks claim from, shared between them.
  final class Campaigns: Sendable {
    private let open = Mutex<[String]>([])
    private let created = Atomic<Int>(0)

    func add(_ id: String) { open.withLock { $0.append(id) } }
    func remove(_ id: String) { open.withLock { $0.removeAll { $0 == id } } }
    func pick(_ random: inout SimulationRandom) -> String? {
      open.withLock { random.element(of: $0) }
    }
    func nextNumber() -> Int { created.add(1, ordering: .relaxed).newValue }
  }

  static let tasks = 6
  static let users = 4_000
  /// Small segments so that rolls happen several times a second; the public minimum.
  static let segmentBytesMax = 1 << 20
  /// Automatic snapshots every 4 MiB of log (a few times per child), well before the parent
  /// rotates the store at 16 MiB.
  static let snapshotLogBytes = 4 << 20

  static func run(_ arguments: [String]) async throws {
    var settings = Settings()
    var index = 0
    while index < arguments.count {
      let option = arguments[index]
      guard index + 1 < arguments.count else { throw UsageError("\(option) needs a value") }
      let value = arguments[index + 1]
      switch option {
      case "--dir": settings.directory = value
      case "--seed":
        guard let seed = UInt64(value) else { throw UsageError("--seed needs a number") }
        settings.seed = seed
      case "--tag": settings.tag = value
      default: throw UsageError("unknown child option \(option)")
      }
      index += 2
    }
    guard !settings.directory.isEmpty else { throw UsageError("child needs --dir") }

    var options = CouponStore.Options()
    options.segmentBytesMax = segmentBytesMax
    options.batchBytesMax = 64 << 10
    options.snapshotLogBytes = snapshotLogBytes
    let store = try await CouponStore.open(directory: settings.directory, options: options)
    let campaigns = Campaigns()
    for campaign in try await store.campaigns() where campaign.remaining > 0 {
      campaigns.add(campaign.id)
    }
    // The child takes snapshots (automatic ones, and `snapshot()` now and then from the claim
    // loop), so the parent also kills during snapshot writing.
    let takesSnapshots = true
    emit(
      "READY \(store.recovery.recordsReplayed) \(store.recovery.tornTailBytesCut) "
        + "\(takesSnapshots ? 1 : 0)\n")

    var random = SimulationRandom(seed: settings.seed)
    let tag = settings.tag
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<tasks {
        let taskRandom = random.split()
        group.addTask {
          try await claimLoop(
            store: store, campaigns: campaigns, tag: tag, random: taskRandom)
        }
      }
      try await group.waitForAll()
    }
  }

  /// Claims forever (until killed): mostly batches of claims by random users, some single
  /// claims, and a new campaign whenever none is open or now and then.
  static func claimLoop(
    store: CouponStore, campaigns: Campaigns, tag: String, random: SimulationRandom
  ) async throws {
    var random = random
    while true {
      guard let campaign = campaigns.pick(&random), !random.chance(0.02) else {
        let id = "c-\(tag)-\(campaigns.nextNumber())"
        let spec = CampaignSpec(
          id: id, name: id, stock: random.int(in: 200...20_000),
          perUserLimit: random.int(in: 1...3))
        let created = try await store.createCampaign(spec)
        emit("C \(created.id) \(created.stock) \(created.perUserLimit)\n")
        campaigns.add(created.id)
        continue
      }
      func user() -> String? { random.chance(0.1) ? nil : "u\(random.below(users))" }
      let requests = (0..<(random.chance(0.7) ? random.int(in: 20...400) : 1)).map { _ in
        ClaimRequest(campaign: campaign, user: user())
      }
      let results = try await store.claim(batch: requests)
      var lines = ""
      for (request, result) in zip(requests, results) {
        switch result {
        case .claimed(let coupon):
          lines += "A \(campaign) \(request.user ?? "-") \(coupon.code)\n"
        case .soldOut:
          campaigns.remove(campaign)
        default:
          break
        }
      }
      emit(lines)
      if random.chance(0.005) { try await store.snapshot() }
    }
  }

  /// Writes whole lines to stdout, at most PIPE_BUF (4,096) bytes per `write`, so that lines
  /// from concurrent tasks never interleave.
  static func emit(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      var end = min(bytes.count, 4_096)
      if end < bytes.count {
        // Cut after the last newline that fits.
        end =
          (bytes.prefix(end).lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 - bytes.startIndex })
          ?? end
      }
      let chunk = bytes.prefix(end)
      chunk.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
          let written = Glibc.write(1, raw.baseAddress! + offset, raw.count - offset)
          if written < 0 {
            if errno == EINTR { continue }
            exit(3)  // the parent is gone: nothing to report to
          }
          offset += written
        }
      }
      bytes = bytes.dropFirst(end)
    }
  }
}

/// A command-line mistake.
struct UsageError: Error {
  var message: String
  init(_ message: String) { self.message = message }
}

let usage = """
  usage: crash-harness [--kills N] [--seed S] [--dir D] [--keep] [--max-delay-ms M]
         crash-harness child --dir D --seed S [--tag T]
  """
