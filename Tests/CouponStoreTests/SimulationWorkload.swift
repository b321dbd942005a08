// The simulator's workload: seeded callers that create campaigns (generated codes or pools), claim
// (alone, anonymously, in batches, by pool code, with request ids and retries), upload pool codes,
// drive coupons through their lifecycle (lock, unlock, redeem, rollback, while the clock moves so
// that locks run out mid-scenario), take snapshots and read, recording what they learn.
//
// Each issued coupon's lifecycle is driven by one caller only (the coupons it claimed, and those
// the driver hands it from earlier lives), so that its transitions happen in a known order whatever
// the interleaving; anyone may read it or try it with the wrong user.
//
// Each caller draws from its own generator, split from the scenario's, so its sequence of calls
// depends only on the seed and on what it was told; several callers run as concurrent tasks and
// the writer serialises them in whatever order they arrive. A caller stops at its first error:
// from then on the store must refuse everything (fail-stop), which the fail-at-N loop checks.

import CouponSimulation
import Foundation

@testable import CouponStore

/// What one caller knows when it starts.
struct WorkerPlan: Sendable {
  var life: Int
  var worker: Int
  var calls: Int
  /// The store's clock; the caller moves it forward before most calls.
  var clock: SimulationClock
  /// Campaign ids known to exist (acknowledged), and some that were never created.
  var campaigns: [String]
  /// The pool campaigns among them.
  var poolCampaigns: [String] = []
  /// Acknowledged request ids that may be retried, with what they must answer.
  var retriable: [(call: ClaimCall, outcome: ClaimOutcome)]
  var retriableLifecycle: [(call: LifecycleCall, outcome: LifecycleOutcome)] = []
  var retriableUploads: [UploadCall] = []
  /// Issued coupons whose lifecycle this caller alone drives: code and owner.
  var owned: [(code: String, user: String?)] = []
  /// Acknowledged pool codes (perhaps claimed since) and codes known to exist, with campaigns.
  var poolCodes: [(code: String, campaign: String)] = []
  var knownCodes: [(code: String, campaign: String)] = []
  /// Whether the caller also issues large anonymous batches (to fill and roll segments).
  var bulk: Bool
  /// Set for a lone caller: every answer is predicted by the model.
  var predictor: SimulationModel?
}

/// What one caller did and learned.
struct WorkerLog: Sendable {
  var events: [SimulationEvent] = []
  var violations: [String] = []
  /// The error that stopped the caller, if any.
  var error: CouponStoreError?
  /// Calls made, the failed one included.
  var callsMade = 0
  /// Snapshots asked for and written, and those that failed (the store may go on after those).
  var snapshotsTaken = 0
  var snapshotFailures = 0
}

enum SimulationWorkload {
  static let users = (0..<6).map { "u\($0)" }
  static let bulkCampaign = "bulk"
  /// A user who never claims anything: every lifecycle call of theirs is `notFound`.
  static let stranger = "stranger"

  /// A campaign spec: small stocks and limits so that sold-out and limit answers are common,
  /// and now and then a window that has not started or has ended; a pool now and then; lock
  /// timeouts of seconds (the clock moves by up to 30 s a call), several redemptions per coupon
  /// now and then, and an expiry within the minute now and then.
  static func spec(id: String?, name: String, now: Int64, random: inout SimulationRandom)
    -> CampaignSpec
  {
    var spec = CampaignSpec(
      id: id, name: name, stock: random.int(in: 0...8), perUserLimit: random.int(in: 1...3))
    switch random.below(10) {
    case 0:
      spec.startsAt = Date(millis: now + 3_600_000)
    case 1:
      spec.startsAt = Date(millis: now - 7_200_000)
      spec.endsAt = Date(millis: now - 60_000)
    default:
      break
    }
    if random.chance(0.25) {
      spec.codes = .pool
      spec.stock = 0
    }
    if random.chance(0.3) { spec.redemptionsPerCoupon = random.int(in: 2...3) }
    spec.lockTimeout = TimeInterval(random.int(in: 2...20))
    if random.chance(0.12) {
      spec.expiresAt = Date(millis: now + Int64(random.int(in: 5...60)) * 1000)
    }
    return spec
  }

  /// Moves the clock: not at all about half the time, by up to 3 s, or by up to 30 s.
  static func advance(_ clock: SimulationClock, random: inout SimulationRandom) {
    switch random.below(20) {
    case 0..<11: break
    case 11..<17: clock.advance(by: Int64(random.int(in: 1...3_000)))
    default: clock.advance(by: Int64(random.int(in: 3_000...30_000)))
    }
  }

  /// Makes one lifecycle call.
  static func perform(_ call: LifecycleCall, on store: CouponStore) async throws(CouponStoreError)
    -> LifecycleAnswer
  {
    switch call.action {
    case .lock:
      LifecycleAnswer(
        try await store.lock(code: call.code, user: call.user, requestID: call.requestID))
    case .unlock:
      LifecycleAnswer(
        try await store.unlock(code: call.code, user: call.user, requestID: call.requestID))
    case .redeem:
      LifecycleAnswer(
        try await store.redeem(code: call.code, user: call.user, requestID: call.requestID))
    case .rollback:
      LifecycleAnswer(
        try await store.rollback(code: call.code, user: call.user, requestID: call.requestID))
    }
  }

  /// Runs one caller against `store` and returns its log. Never throws: errors are recorded.
  static func run(_ plan: WorkerPlan, store: CouponStore, random: SimulationRandom) async
    -> WorkerLog
  {
    var random = random
    var log = WorkerLog()
    var model = plan.predictor
    var campaigns = plan.campaigns
    var poolCampaigns = plan.poolCampaigns
    var retriable = plan.retriable
    var retriableLifecycle = plan.retriableLifecycle
    var retriableUploads = plan.retriableUploads
    var owned = plan.owned
    var poolCodes = plan.poolCodes
    var lastLocked: (code: String, user: String?)?
    let clock = plan.clock
    let tag = "L\(plan.life)w\(plan.worker)"

    func note(_ events: [SimulationEvent]) {
      log.events += events
      if model != nil { log.violations += model!.learn(events) }
    }
    func randomUser() -> String? {
      random.chance(0.15) ? nil : random.element(of: users)!
    }
    func randomCampaign() -> String {
      random.chance(0.08) ? "missing-\(random.below(3))" : random.element(of: campaigns) ?? "none"
    }
    /// Checks an answer against the prediction (one caller) or against what holds under any
    /// interleaving (several).
    /// A retry's coupon is shown as it is now (locked, redeemed…); a new one is `assigned`.
    func check(_ call: ClaimCall, _ result: ClaimResult, now: Int64, retry: Bool = false) {
      if let model, let problem = model.mismatch(call, result, now: now) {
        log.violations.append("wrong answer: " + problem)
      }
      switch result {
      case .claimed(let coupon):
        if coupon.campaign != call.campaign || coupon.user != call.user
          || coupon.state != .assigned && !retry || coupon.state == .available
          || (call.code.map { $0 != coupon.code } ?? false)
        {
          log.violations.append("\(call) returned the foreign coupon \(coupon)")
        }
      case .limitReached(let existing):
        if existing.isEmpty
          || existing.contains(where: {
            $0.campaign != call.campaign || $0.user != call.user || call.user == nil
          })
        {
          log.violations.append("\(call) answered limitReached with \(existing)")
        }
      case .campaignNotFound:
        if plan.campaigns.contains(call.campaign) && call.requestID == nil {
          log.violations.append("\(call): campaignNotFound for an acknowledged campaign")
        }
      default:
        break
      }
    }

    /// A lifecycle call on an owned coupon (now and then by the wrong user, or on a code that
    /// does not exist): redeems and unlocks favour the coupon locked last.
    func lifecycleCall(_ id: String) -> LifecycleCall {
      let action: LifecycleAction
      switch random.below(20) {
      case 0..<7: action = .lock
      case 7..<13: action = .redeem
      case 13..<16: action = .unlock
      default: action = .rollback
      }
      let requestID = random.chance(0.3) ? "q-\(id)" : nil
      guard !owned.isEmpty, !random.chance(0.04) else {
        return LifecycleCall(
          action: action, code: "NOPE-\(random.below(3))", user: randomUser(), requestID: requestID)
      }
      var target = random.element(of: owned)!
      if action == .redeem || action == .unlock, let lastLocked, random.chance(0.6) {
        target = lastLocked
      }
      var user = target.user
      if random.chance(0.05) { user = target.user == nil ? stranger : nil }
      return LifecycleCall(action: action, code: target.code, user: user, requestID: requestID)
    }
    /// Hands a coupon this caller claimed to its lifecycle calls.
    func own(_ result: ClaimResult) {
      if let coupon = result.coupon { owned.append((coupon.code, coupon.user)) }
    }
    /// Checks what holds of a lifecycle answer under any interleaving.
    func check(_ call: LifecycleCall, _ answer: LifecycleAnswer) {
      let owner = owned.first { $0.code == call.code }
      if owner == nil || owner?.user != call.user, answer.outcome != .notFound {
        log.violations.append("\(call) on someone else's or no coupon answered \(answer.outcome)")
      }
      if let coupon = answer.coupon, coupon.code != call.code || coupon.user != call.user {
        log.violations.append("\(call) returned the foreign coupon \(coupon)")
      }
    }

    for index in 0..<plan.calls {
      log.callsMade += 1
      let id = "\(tag)-\(index)"
      advance(clock, random: &random)
      let now = clock.millis
      // What the model must count as in flight if the call fails.
      var inFlight: [SimulationEvent] = []
      do throws(CouponStoreError) {
        switch random.below(100) {
        case 0..<22:
          let call = ClaimCall(
            campaign: randomCampaign(), user: randomUser(),
            requestID: random.chance(0.3) ? "r-\(id)" : nil)
          inFlight = [.claimed(call, nil)]
          let result = try await store.claim(
            campaign: call.campaign, user: call.user, requestID: call.requestID)
          check(call, result, now: now)
          note([.claimed(call, result)])
          own(result)
          if call.requestID != nil { retriable.append((call, ClaimOutcome(result))) }
        case 22..<28:
          let calls = (0..<random.int(in: 1...6)).map { position in
            ClaimCall(
              campaign: randomCampaign(), user: randomUser(),
              requestID: random.chance(0.2) ? "r-\(id)-\(position)" : nil)
          }
          inFlight = calls.map { .claimed($0, nil) }
          let results = try await store.claim(
            batch: calls.map {
              ClaimRequest(campaign: $0.campaign, user: $0.user, requestID: $0.requestID)
            })
          if results.count != calls.count {
            log.violations.append("a batch of \(calls.count) got \(results.count) answers")
          }
          for (call, result) in zip(calls, results) {
            check(call, result, now: now)
            note([.claimed(call, result)])
            own(result)
          }
        case 28..<36:
          // A retry of an acknowledged request changes nothing, so it is never in flight.
          switch random.below(3) {
          case 0:
            guard let (call, outcome) = random.element(of: retriable) else { continue }
            let result =
              if let code = call.code {
                try await store.claim(code: code, user: call.user, requestID: call.requestID)
              } else {
                try await store.claim(
                  campaign: call.campaign, user: call.user, requestID: call.requestID)
              }
            if ClaimOutcome(result) != outcome {
              log.violations.append(
                "retry of \(call) answered \(ClaimOutcome(result)), first answer \(outcome)")
            }
            check(call, result, now: now, retry: true)
            note([.claimed(call, result)])
          case 1:
            guard let (call, outcome) = random.element(of: retriableLifecycle) else { continue }
            let answer = try await perform(call, on: store)
            if answer.outcome != outcome {
              log.violations.append(
                "retry of \(call) answered \(answer.outcome), first answer \(outcome)")
            }
            // A success carries the coupon as it is now.
            if let model, let coupon = answer.coupon, var life = model.life(of: call.code) {
              life.settle(at: now)
              if coupon.state != life.state || coupon.redemptions != life.redemptions {
                log.violations.append("retry of \(call) returned \(coupon), the model has \(life)")
              }
            }
            note([.lifecycle(call, answer, TimeWindow(earliest: now, latest: clock.millis))])
          default:
            guard let call = random.element(of: retriableUploads) else { continue }
            let result = try await store.addCodes(
              call.codes, to: call.campaign, requestID: call.requestID)
            note([.uploaded(call, result)])
          }
        case 36..<42:
          let spec = spec(
            id: random.chance(0.85) ? "c-\(id)" : nil, name: "n\(index)", now: now,
            random: &random)
          inFlight = [.created(spec, nil)]
          let campaign = try await store.createCampaign(spec)
          if let expected = spec.id, campaign.id != expected {
            log.violations.append("created \(expected) but got \(campaign.id)")
          }
          if campaign.issued != 0 || campaign.stock != spec.stock {
            log.violations.append("new campaign \(campaign) does not match \(spec)")
          }
          note([.created(spec, campaign)])
          campaigns.append(campaign.id)
          if spec.codes == .pool { poolCampaigns.append(campaign.id) }
        case 42..<46:
          let user = random.element(of: users)!
          let coupons = try await store.coupons(of: user)
          if coupons.contains(where: { $0.user != user }) {
            log.violations.append("coupons(of: \(user)) returned another user's coupon")
          }
          if let model {
            let expected = Set(model.coupons.filter { $0.value.user == user }.map(\.key))
            if Set(coupons.map(\.code)) != expected {
              log.violations.append(
                "coupons(of: \(user)) returned \(coupons.map(\.code).sorted()), the model has "
                  + "\(expected.sorted())")
            }
          }
          note([.seen(coupons.map { ($0.code, CouponFacts(campaign: $0.campaign, user: $0.user)) })]
          )
        case 46..<50:
          // An upload of new codes, now and then with a repeat, a code that exists and an empty
          // one; now and then to a campaign that generates its codes, which must be refused.
          if random.chance(0.1),
            let generated = random.element(
              of: campaigns.filter { !poolCampaigns.contains($0) })
          {
            do throws(CouponStoreError) {
              _ = try await store.addCodes(["P.\(id).x"], to: generated)
              log.violations.append("an upload to \(generated), which generates codes, succeeded")
            } catch {
              if error.code != .invalidArgument { throw error }
            }
            continue
          }
          guard let campaign = random.element(of: poolCampaigns) else { continue }
          let fresh = (0..<random.int(in: 1...5)).map { "P.\(id).\($0)" }
          var codes = fresh
          if random.chance(0.3) { codes.insert(fresh[0], at: random.int(in: 0...codes.count)) }
          if random.chance(0.3), let known = random.element(of: plan.knownCodes) {
            codes.insert(known.code, at: random.int(in: 0...codes.count))
          }
          if random.chance(0.15) { codes.insert("", at: random.int(in: 0...codes.count)) }
          let call = UploadCall(
            campaign: campaign, codes: codes, fresh: fresh,
            requestID: random.chance(0.3) ? "u-\(id)" : nil)
          inFlight = [.uploaded(call, nil)]
          let result = try await store.addCodes(codes, to: campaign, requestID: call.requestID)
          note([.uploaded(call, result)])
          poolCodes += fresh.map { ($0, campaign) }
          if call.requestID != nil { retriableUploads.append(call) }
        case 50..<54:
          // A claim of a named code: an uploaded one (perhaps taken), one that is not a pool
          // code, or one that does not exist.
          var target = (code: "NOPE-\(random.below(3))", campaign: "?")
          switch random.below(10) {
          case 0..<6: target = random.element(of: poolCodes) ?? target
          case 6..<8: target = random.element(of: plan.knownCodes) ?? target
          default: break
          }
          let call = ClaimCall(
            campaign: target.campaign, user: randomUser(),
            requestID: random.chance(0.2) ? "r-\(id)" : nil, code: target.code)
          inFlight = [.claimed(call, nil)]
          let result = try await store.claim(
            code: target.code, user: call.user, requestID: call.requestID)
          check(call, result, now: now)
          note([.claimed(call, result)])
          own(result)
          if call.requestID != nil { retriable.append((call, ClaimOutcome(result))) }
        case 54..<74:
          let call = lifecycleCall(id)
          inFlight = [.lifecycle(call, nil, TimeWindow(earliest: now, latest: now))]
          let answer = try await perform(call, on: store)
          check(call, answer)
          note([.lifecycle(call, answer, TimeWindow(earliest: now, latest: clock.millis))])
          if call.requestID != nil { retriableLifecycle.append((call, answer.outcome)) }
          if call.action == .lock, answer.outcome == .done { lastLocked = (call.code, call.user) }
        case 74..<78:
          // A coupon's audit trail, and the coupon alone.
          guard let (code, owner) = random.element(of: owned) else { continue }
          let details = try await store.couponDetails(code: code)
          let coupon = try await store.coupon(code: code)
          if details?.coupon.user != owner || coupon?.user != owner || coupon?.code != code {
            log.violations.append(
              "coupon \(code) of \(owner ?? "nobody") read as \(String(describing: coupon))")
          }
          if let model {
            if let problem = model.lifeMismatch(code, details, at: now) {
              log.violations.append("wrong read: " + problem)
            }
            if coupon != details?.coupon {
              log.violations.append("coupon(code: \(code)) and couponDetails disagree")
            }
          }
        case 78..<82:
          // A snapshot changes no business state: nothing is in flight. Its failure need not
          // stop the store (the log still holds everything).
          do throws(CouponStoreError) {
            let info = try await store.snapshot()
            log.snapshotsTaken += 1
            if info.sequence > 0 && !info.path.contains("/snapshot-") {
              log.violations.append("snapshot() returned \(info)")
            }
          } catch {
            if error.code != .io { throw error }
            log.snapshotFailures += 1
          }
        case 84..<92 where plan.bulk:
          // A large anonymous batch: fills segments quickly so that they roll mid-scenario.
          let calls = Array(
            repeating: ClaimCall(campaign: bulkCampaign, user: nil, requestID: nil),
            count: random.int(in: 2_000...6_000))
          inFlight = calls.map { .claimed($0, nil) }
          let results = try await store.claim(
            batch: calls.map { ClaimRequest(campaign: $0.campaign, user: nil) })
          for (call, result) in zip(calls, results) {
            check(call, result, now: now)
            note([.claimed(call, result)])
          }
        default:
          let campaign = randomCampaign()
          if let page = try await store.claims(of: campaign, limit: 50) {
            let seen = page.claims.map { ($0.code, CouponFacts(campaign: campaign, user: $0.user)) }
            if let model, page.next == nil,
              Set(seen.map(\.0)) != Set(model.coupons.filter { $0.value.campaign == campaign }.keys)
            {
              log.violations.append("claims(of: \(campaign)) disagrees with the model")
            }
            note([.seen(seen)])
          }
        }
      } catch {
        note(inFlight)
        log.error = error
        if ![.io, .stopped, .closed].contains(error.code) {
          log.violations.append("unexpected error: \(error)")
        }
        return log
      }
    }
    return log
  }
}

extension SimulationModel {
  /// What caller `worker` of `workers` knows at the start of a life: the acknowledged campaigns
  /// and requests, and its share of the issued coupons, by a hash of the code that does not
  /// depend on the process (Swift's `Hasher` is seeded per process), so that each coupon's
  /// lifecycle has one driver and a seed replays.
  func plan(life: Int, worker: Int, of workers: Int, clock: SimulationClock) -> WorkerPlan {
    func share(_ code: String) -> Int {
      var hash: UInt64 = 0xcbf2_9ce4_8422_2325
      for byte in code.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
      return Int(hash % UInt64(workers))
    }
    let issued = coupons.filter { $0.value.campaign != SimulationWorkload.bulkCampaign }
      .sorted { $0.key < $1.key }
    let available = books.pool.filter { coupons[$0.key] == nil }.sorted { $0.key < $1.key }
    let retriable = requests.values.sorted { $0.call.requestID! < $1.call.requestID! }
    let retriableLifecycle = books.requests.values.sorted {
      $0.call.requestID! < $1.call.requestID!
    }
    return WorkerPlan(
      life: life, worker: worker, calls: 0, clock: clock,
      campaigns: campaigns.keys.sorted(),
      poolCampaigns: campaigns.values.filter(\.isPool).map(\.id).sorted(),
      retriable: retriable.suffix(12).map { ($0.call, $0.outcome) },
      retriableLifecycle: retriableLifecycle.suffix(12).map { ($0.call, $0.outcome) },
      retriableUploads: books.uploads.values.sorted { $0.requestID! < $1.requestID! }.suffix(6),
      owned: issued.filter { share($0.key) == worker }.suffix(24).map { ($0.key, $0.value.user) },
      poolCodes: available.suffix(16).map { ($0.key, $0.value) },
      knownCodes: (issued.suffix(8).map { ($0.key, $0.value.campaign) }
        + available.prefix(4).map { ($0.key, $0.value) }),
      bulk: false, predictor: workers == 1 ? self : nil)
  }
}
