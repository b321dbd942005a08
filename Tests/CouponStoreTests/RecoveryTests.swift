import Foundation
import Testing

@testable import CouponStore

@Suite("Recovery, locking, fail-stop")
struct RecoveryTests {
  /// Claims some coupons, closes, reopens: everything is identical and claims go on correctly.
  @Test func closeAndReopenRestoresCampaignsClaimsAndCodes() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var store = try await CouponStore.open(directory: path)
    let campaign = try await store.createCampaign(
      CampaignSpec(id: "spring", name: "Spring", stock: 100, perUserLimit: 2))
    for user in 0..<60 { _ = try await store.claim(campaign: "spring", user: "u\(user % 40)") }
    let before = try await store.claims(of: "spring", limit: 1000)
    let campaignsBefore = try await store.campaigns()
    let statisticsBefore = try await store.statistics()
    try await store.close()

    store = try await CouponStore.open(directory: path)
    #expect(try await store.campaigns() == campaignsBefore)
    #expect(try await store.claims(of: "spring", limit: 1000) == before)
    let statisticsAfter = try await store.statistics()
    #expect(statisticsAfter.issued == statisticsBefore.issued)
    #expect(statisticsAfter.users == statisticsBefore.users)
    #expect(store.recovery.recordsReplayed == 61)
    // u0 got two coupons before the restart: the limit still holds after it.
    if case .limitReached(let existing) = try await store.claim(campaign: "spring", user: "u0") {
      #expect(existing.count == 2)
    } else {
      Issue.record("limit not enforced after reopen")
    }
    #expect(try await store.claim(campaign: campaign.id, user: "new").coupon != nil)
    try await store.close()
  }

  @Test func truncatedTrailingRecordIsCutOnOpen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = try await Self.writeClaims(path, count: 20)
    let last = try #require(try FileSurgery.segments(path).last { try FileSurgery.size($0) > 32 })
    try FileSurgery.truncate(last, by: 5)  // cuts into the last claim
    let store = try await CouponStore.open(directory: path)
    #expect(store.recovery.tornTailBytesCut > 0)
    let page = try #require(try await store.claims(of: "c", limit: 100))
    #expect(page.claims.map(\.code) == Array(codes.dropLast()))
    try await store.close()
    // The cut was made on disk: a second open finds a clean log.
    let again = try await CouponStore.open(directory: path)
    #expect(again.recovery.tornTailBytesCut == 0)
    #expect(try await again.claims(of: "c", limit: 100)?.claims.count == 19)
    try await again.close()
  }

  @Test func garbageAppendedToTheLogIsCutOnOpen() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let codes = try await Self.writeClaims(path, count: 10)
    let last = try #require(try FileSurgery.segments(path).last)
    try FileSurgery.append(last, (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    let store = try await CouponStore.open(directory: path)
    #expect(store.recovery.tornTailBytesCut == 300)
    #expect(try await store.claims(of: "c", limit: 100)?.claims.map(\.code) == codes)
    try await store.close()
  }

  @Test func corruptRecordBeforeTheTailRefusesToOpenNamingFileAndOffset() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    _ = try await Self.writeClaims(path, count: 20)
    let segment = try #require(
      try FileSurgery.segments(path).first { try FileSurgery.size($0) > 32 })
    try FileSurgery.flipBit(segment, at: 32 + 20 + 3)  // inside the first record's payload
    do {
      _ = try await CouponStore.open(directory: path)
      Issue.record("open succeeded on a corrupt log")
    } catch {
      #expect(error.code == .corruption)
      #expect(error.path == segment)
      #expect(error.offset == 32)
    }
    // Salvage cuts there instead and says how much it dropped.
    var options = CouponStore.Options()
    options.salvage = true
    let store = try await CouponStore.open(directory: path, options: options)
    #expect(store.recovery.salvagedBytesDropped > 0)
    #expect(try await store.campaigns().isEmpty)
    try await store.close()
  }

  @Test func secondOpenOfAnOpenDirectoryThrowsLocked() async throws {
    try await withTemporaryStore { _, path in
      do {
        _ = try await CouponStore.open(directory: path)
        Issue.record("second open succeeded")
      } catch let error as CouponStoreError {
        #expect(error.code == .locked)
      }
    }
  }

  @Test func storeReleasedWithoutCloseReleasesTheDirectoryAndKeepsItsClaims() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    var code: String?
    do {
      let store = try await CouponStore.open(directory: path)
      _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 3))
      code = try await store.claim(campaign: "c", user: "u").coupon?.code
    }
    // The store above is gone without close(): its deinit stopped the threads and unlocked.
    let reopened = try await CouponStore.open(directory: path)
    #expect(try await reopened.coupon(code: try #require(code))?.user == "u")
    try await reopened.close()
  }

  @Test func unrecognizedFileInTheDirectoryIsRefused() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    #expect(FileManager.default.createFile(atPath: path + "/notes.txt", contents: Data("hi".utf8)))
    await #expect(throws: CouponStoreError.self) { try await CouponStore.open(directory: path) }
    do {
      _ = try await CouponStore.open(directory: path)
    } catch {
      #expect(error.code == .unrecognizedFile)
    }
  }

  @Test func dataFilesAreOwnerOnly() async throws {
    try await withTemporaryStore { store, path in
      _ = try await store.createCampaign(CampaignSpec(name: "p", stock: 1))
      let attributes = try FileManager.default.attributesOfItem(atPath: path)
      #expect((attributes[.posixPermissions] as? Int) == 0o700)
      for segment in try FileSurgery.segments(path) {
        let mode = try FileManager.default.attributesOfItem(atPath: segment)[.posixPermissions]
        #expect((mode as? Int) == 0o600)
      }
    }
  }

  /// Timeline: claims succeed; then every fdatasync fails; the claim in flight and every later
  /// write fail with the same error; reopening holds exactly the acknowledged claims.
  @Test func failedSyncStopsTheStoreAndReopenHoldsTheAcknowledgedClaims() async throws {
    let path = temporaryStorePath()
    defer { try? FileManager.default.removeItem(atPath: path) }
    let faulty = FailingSyncFileSystem()
    var options = CouponStore.Options()
    options.fileSystem = faulty
    let store = try await CouponStore.open(directory: path, options: options)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 100))
    var acknowledged: [String] = []
    for user in 0..<10 {
      acknowledged.append(try await store.claim(campaign: "c", user: "u\(user)").coupon!.code)
    }
    faulty.failSyncs()
    do {
      _ = try await store.claim(campaign: "c", user: "late")
      Issue.record("claim acknowledged although fdatasync failed")
    } catch {
      #expect(error.code == .io)
      #expect(error.syscall == "fdatasync")
      #expect(error.errno == EIO)
    }
    faulty.healSyncs()
    do {
      _ = try await store.claim(campaign: "c", user: "later")
      Issue.record("store accepted a write after a failed sync")
    } catch {
      #expect(error.code == .io)
    }
    await #expect(throws: CouponStoreError.self) { try await store.statistics() }
    try? await store.close()

    let reopened = try await CouponStore.open(directory: path)
    let codes = try #require(try await reopened.claims(of: "c", limit: 100)).claims.map(\.code)
    #expect(Array(codes.prefix(10)) == acknowledged)
    // The failed claim's caller never got an answer; it may or may not be on disk.
    #expect(codes.count <= 11)
    try await reopened.close()
  }

  static func writeClaims(_ path: String, count: Int) async throws -> [String] {
    let store = try await CouponStore.open(directory: path)
    _ = try await store.createCampaign(CampaignSpec(id: "c", name: "c", stock: 1000))
    var codes: [String] = []
    for user in 0..<count {
      codes.append(try await store.claim(campaign: "c", user: "u\(user)").coupon!.code)
    }
    try await store.close()
    return codes
  }
}

#if canImport(Glibc)
  import Glibc
#endif

/// The real file system, except that `fdatasync` can be made to fail with EIO.
final class FailingSyncFileSystem: FileSystem, @unchecked Sendable {
  // `failing` is guarded by `lock`; everything else is the stateless real file system.
  private let real = RealFileSystem()
  private let lock = NSLock()
  private var failing = false

  func failSyncs() { lock.withLock { failing = true } }
  func healSyncs() { lock.withLock { failing = false } }

  func openFile(_ path: String, options: OpenOptions) throws(SystemCallError) -> FileDescriptor {
    try real.openFile(path, options: options)
  }
  func close(_ fd: FileDescriptor) { real.close(fd) }
  func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  { try real.write(fd, bytes, at: offset) }
  func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
  { try real.read(fd, into: buffer, at: offset) }
  func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    if lock.withLock({ failing }) {
      throw SystemCallError(syscall: "fdatasync", errno: EIO, path: "")
    }
    try real.syncData(fd)
  }
  func sync(_ fd: FileDescriptor) throws(SystemCallError) { try real.sync(fd) }
  func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    try real.truncate(fd, to: length)
  }
  func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 { try real.size(of: fd) }
  func rename(_ from: String, to: String) throws(SystemCallError) { try real.rename(from, to: to) }
  func removeFile(_ path: String) throws(SystemCallError) { try real.removeFile(path) }
  func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    try real.contentsOfDirectory(path)
  }
  func createDirectory(_ path: String) throws(SystemCallError) { try real.createDirectory(path) }
  func fileExists(_ path: String) -> Bool { real.fileExists(path) }
  func syncDirectory(_ path: String) throws(SystemCallError) { try real.syncDirectory(path) }
  func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    try real.lockDirectory(path)
  }
  func unlock(_ fd: FileDescriptor) { real.unlock(fd) }
}
