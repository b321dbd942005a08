// Read-only tools over a data directory: what `couponstore inspect`, `verify` and `dump` print.
// They recover the state (newest valid snapshot, then the log) into a private copy without taking
// the directory's lock and without writing anything (a torn tail is reported, not cut).

import CouponLog
import Foundation

/// What a data directory holds, as found by a read-only replay.
public struct StoreInspection: Sendable {
  /// Every campaign, in creation order.
  public var campaigns: [Campaign]
  /// Store-wide counters (log fields included).
  public var statistics: StoreStatistics
  /// The log segment files, oldest first, with their sizes in bytes.
  public var segments: [(path: String, bytes: Int64)]
  /// The snapshot files, newest first.
  public var snapshots: [SnapshotInspection]
  /// Temporary snapshot files a crash while writing one left behind (deleted on open; harmless).
  public var unfinishedSnapshots: [String]
  /// Bytes of a torn tail that opening the store would cut; 0 if none.
  public var tornTailBytes: Int64
  /// Invariant violations found (empty for a healthy store).
  public var problems: [String]
}

extension CouponStore {
  /// Recovers the state of `directory` read-only (the newest valid snapshot, then the log after
  /// it) and checks every invariant: checksums of every record, stock never exceeded, per-user
  /// limits held, codes unique, indexes consistent. A damaged snapshot is listed as a problem.
  ///
  /// With `verifySnapshots`, every snapshot file is also read and checked in full, so is every
  /// log segment (also those only the older snapshot needs), and when two snapshots are valid,
  /// the older one plus the log up to the newer one must rebuild exactly the newer one's state.
  ///
  /// - Throws: ``CouponStoreError/Code/corruption`` naming file and offset for damage before the
  ///   tail, or for a damaged snapshot that nothing else covers; I/O errors.
  public static func inspect(
    directory: String, fileSystem: any FileSystem = RealFileSystem(),
    verifySnapshots: Bool = false, progress: (@Sendable (OpenProgress) -> Void)? = nil
  ) throws(CouponStoreError) -> StoreInspection {
    var options = Options()
    options.fileSystem = fileSystem
    options.openProgress = progress
    let recovered = try recoverState(
      directory: directory, options: options, readOnly: true, verifyCovered: verifySnapshots)
    let state = recovered.state
    let report = recovered.report
    let (snapshots, snapshotProblems) = try inspectSnapshots(
      recovered, directory: directory, options: options, verify: verifySnapshots)
    var segments: [(String, Int64)] = []
    for path in report.segments {
      let bytes: Int64
      do {
        let fd = try fileSystem.openFile(path, options: .readOnly)
        defer { fileSystem.close(fd) }
        bytes = try fileSystem.size(of: fd)
      } catch {
        throw .io(error, while: "measuring \(path)")
      }
      segments.append((path, bytes))
    }
    var statistics = state.statistics(lastSequence: report.lastSequence)
    statistics.logBytes = segments.reduce(0) { $0 + $1.1 }
    statistics.segments = segments.count
    statistics.snapshotSequence = recovered.snapshot?.sequence ?? 0
    return StoreInspection(
      campaigns: (0..<state.campaigns.count).map { state.campaign(at: UInt32($0)) },
      statistics: statistics, segments: segments, snapshots: snapshots,
      unfinishedSnapshots: try listSnapshots(directory: directory, fileSystem: fileSystem)
        .temporaries,
      tornTailBytes: report.tornTail?.bytesCut ?? 0,
      problems: snapshotProblems + state.invariantViolations())
  }

  /// Calls `line` with every log record of `directory` as one line of JSON, in log order:
  /// `{"seq":12,"type":"claimed","campaign":0,"user":"u1","code":"K7QX2-M9DHT","time":…}`.
  /// Read-only.
  public static func dump(
    directory: String, fileSystem: any FileSystem = RealFileSystem(), line: (String) -> Void
  ) throws(CouponStoreError) {
    var options = RecoveryOptions()
    options.readOnly = true
    do {
      _ = try recoverLog(fileSystem: fileSystem, directory: directory, options: options) {
        record in
        do {
          let event = try EventCoder.decode(type: record.type, payload: record.payload)
          line(EventJSON.line(sequence: record.sequence, event: event))
        } catch {
          throw CouponStoreError(
            code: .corruption, message: "undecodable event: \(error)", path: record.path,
            offset: record.offset)
        }
      }
    } catch let error as CouponStoreError {
      throw error
    } catch let error as LogError {
      throw CouponStoreError(logError: error)
    } catch {
      throw CouponStoreError(code: .io, message: "\(error)")
    }
  }
}

extension CouponStoreError {
  init(logError: LogError) {
    switch logError {
    case .corruption(let path, let offset, let reason):
      self.init(
        code: .corruption,
        message: "the log is damaged before its end (\(reason)); restore a backup, or open "
          + "with salvage to cut the log at this point (later records are lost)",
        path: path, offset: offset)
    case .io(let systemError):
      self = .io(systemError, while: "reading the log")
    }
  }
}

extension StoreState {
  func statistics(lastSequence: UInt64) -> StoreStatistics {
    var byState: [CouponState: Int] = [.available: 0, .assigned: 0, .locked: 0, .redeemed: 0]
    var byCampaign: [CampaignID: [CouponState: Int]] = [:]
    var issued = 0
    for campaign in campaigns {
      issued += campaign.issued
      for couponState in [CouponState.available, .assigned, .locked, .redeemed] {
        let count = campaign.countsByState[Int(couponState.rawValue)]
        byState[couponState, default: 0] += count
        byCampaign[campaign.record.id, default: [:]][couponState] = count
      }
    }
    let visible = byState.values.reduce(0, +)  // staged upload codes are not coupons yet
    return StoreStatistics(
      campaigns: campaigns.count, coupons: visible, issued: issued, users: users.count,
      couponsByState: byState, couponsByCampaign: byCampaign, requestIDs: requests.count,
      lastSequence: lastSequence, logBytes: 0, segments: 0)
  }

  /// Every broken invariant, described; empty when the state is consistent. Walks everything:
  /// for `verify` and tests, not for the hot path.
  func invariantViolations() -> [String] {
    var problems: [String] = []
    var perUserCampaign: [UInt64: Int] = [:]
    var issuedPerCampaign = [Int](repeating: 0, count: campaigns.count)
    for (id, coupon) in coupons.enumerated() where !coupon.isStaged {
      if Int(coupon.campaign) >= campaigns.count {
        problems.append("coupon \(id) names unknown campaign \(coupon.campaign)")
        continue
      }
      if coupon.state != .available { issuedPerCampaign[Int(coupon.campaign)] += 1 }
      if coupon.owner != CouponRecord.none {
        perUserCampaign[UInt64(coupon.owner) << 32 | UInt64(coupon.campaign), default: 0] += 1
      }
    }
    for (index, campaign) in campaigns.enumerated() {
      let id = campaign.record.id
      if campaign.issued > campaign.stock {
        problems.append("campaign \(id) oversold: \(campaign.issued) > \(campaign.stock)")
      }
      if issuedPerCampaign[index] != campaign.issued {
        problems.append("campaign \(id) issue list disagrees with its coupons")
      }
      if campaign.countsByState.reduce(0, +) != campaign.issued + campaign.available.count {
        problems.append("campaign \(id) state counts disagree with its coupons")
      }
    }
    for (key, count) in perUserCampaign
    where held(by: UInt32(key >> 32), in: UInt32(key & 0xFFFF_FFFF)) != count {
      problems.append("per-user coupon counts disagree with the coupons' owners")
      break
    }
    for (key, count) in perUserCampaign {
      let campaign = campaigns[Int(key & 0xFFFF_FFFF)]
      if count > campaign.record.perUserLimit {
        problems.append(
          "user \(users.string(of: UInt32(key >> 32))) holds \(count) coupons of "
            + "\(campaign.record.id), limit \(campaign.record.perUserLimit)")
      }
    }
    if codes.count != coupons.count { problems.append("code table and coupons out of step") }
    return problems + lifecycleViolations()
  }
}

/// JSON lines for `dump`.
enum EventJSON {
  static func line(sequence: UInt64, event: Event) -> String {
    var fields: [(String, String)] = [("seq", "\(sequence)"), ("type", quote("\(event.type)"))]
    func add(_ key: String, _ value: String) { fields.append((key, value)) }
    func addRequest(_ tag: RequestTag?) {
      if let tag { add("requestID", quote(tag.id)) }
    }
    switch event {
    case .campaignCreated(let record, let request):
      add("id", quote(record.id))
      add("name", quote(record.name))
      add("stock", "\(record.stock)")
      add("startsAt", "\(record.startsAt)")
      add("endsAt", record.endsAt.map { "\($0)" } ?? "null")
      add("perUserLimit", "\(record.perUserLimit)")
      add("redemptionsPerCoupon", "\(record.redemptionsPerCoupon)")
      add("codes", quote("\(record.codes)"))
      add("lockTimeoutMillis", "\(record.lockTimeoutMillis)")
      add("expiresAt", record.expiresAt.map { "\($0)" } ?? "null")
      add("createdAt", "\(record.createdAt)")
      addRequest(request)
    case .claimed(let campaign, let user, let code, let time, let request):
      add("campaign", "\(campaign)")
      add("user", user.map(quote) ?? "null")
      add("code", quote(code))
      add("time", "\(time)")
      addRequest(request)
    case .codesAdded(let campaign, let upload, let final, let codes, let time, let request):
      add("campaign", "\(campaign)")
      add("upload", "\(upload)")
      add("final", "\(final)")
      add("codes", "[" + codes.map(quote).joined(separator: ",") + "]")
      add("time", "\(time)")
      addRequest(request)
    case .poolClaimed(let campaign, let coupon, let user, let time, let request):
      add("campaign", "\(campaign)")
      add("coupon", "\(coupon)")
      add("user", user.map(quote) ?? "null")
      add("time", "\(time)")
      addRequest(request)
    case .locked(let coupon, let time, let expiresAt, let request):
      add("coupon", "\(coupon)")
      add("time", "\(time)")
      add("expiresAt", "\(expiresAt)")
      addRequest(request)
    case .unlocked(let coupon, let time, let request), .redeemed(let coupon, let time, let request),
      .rolledBack(let coupon, let time, let request):
      add("coupon", "\(coupon)")
      add("time", "\(time)")
      addRequest(request)
    case .lockExpired(let coupon, let time):
      add("coupon", "\(coupon)")
      add("time", "\(time)")
    case .requestRecorded(let tag, let outcome, let time):
      add("requestID", quote(tag.id))
      add("outcome", "\(outcome)")
      add("time", "\(time)")
    }
    return "{" + fields.map { "\(quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
  }

  static func quote(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          out += String(format: "\\u%04x", scalar.value)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
