// swift-tools-version:6.1
import PackageDescription

/// `MBDATA_FUZZ=1 swift build --scratch-path .build-fuzz -c release --product mbdata-fuzz`
/// (`make fuzz`): mbdata's own targets are built with libFuzzer's coverage instrumentation and
/// AddressSanitizer, and testable so the fuzz targets reach internal parsers in release
/// builds; the dependencies stay uninstrumented.
let fuzzing = Context.environment["MBDATA_FUZZ"] == "1"
let fuzzFlags = ["-sanitize=fuzzer,address", "-enable-testing"]

let strictSettings: [SwiftSetting] =
    [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ] + (fuzzing ? [.unsafeFlags(fuzzFlags)] : [])

let package = Package(
    name: "mbdata",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "MBDataTraining", targets: ["MBDataTraining"]),
        .library(name: "MBData", targets: ["MBData"]),
        .library(name: "MBDataServer", targets: ["MBDataServer"]),
        .library(name: "MBDataOrigin", targets: ["MBDataOrigin"]),
        .library(name: "MBDataClient", targets: ["MBDataClient"]),
        .executable(name: "mbdata", targets: ["mbdata"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        // `make docs`: the `generate-documentation` command plugin (DocC catalogs in Sources/*/*.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        // The shared state store of a cluster of daemons (`--state postgresql://…`).
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.25.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "CMallocTuning"),
        .target(
            name: "MBDataTraining",
            dependencies: [
                "CLZ4",
                "CMallocTuning",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBData",
            dependencies: [
                "MBDataTraining",
                "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // Shard sets from an HTTP origin into a bounded, verified local cache: AsyncHTTPClient
        // stays out of MBData, which in-process loaders import.
        .target(
            name: "MBDataOrigin",
            dependencies: [
                "MBData",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBDataWire",
            dependencies: ["MBDataTraining", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBDataServer",
            dependencies: [
                "MBData",
                "MBDataOrigin",
                "MBDataWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBDataClient",
            dependencies: [
                "MBDataTraining",
                "MBDataWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata",
            dependencies: [
                "MBData",
                "MBDataOrigin",
                "MBDataServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "digits-trainer",
            dependencies: ["MBData", "MBDataClient"],
            path: "samples/swift/DigitsTrainer",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata-loader-bench",
            dependencies: ["MBData"],
            path: "Benchmarks/loader",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata-infer-bench",
            dependencies: ["MBData"],
            path: "Benchmarks/inference/swift",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata-packing-bench",
            dependencies: ["MBData"],
            path: "Benchmarks/packing/swift",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata-insert-bench",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/insert-path",
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBDataTestSupport",
            dependencies: [
                "MBData", "MBDataServer", "MBDataOrigin",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Support",
            swiftSettings: strictSettings
        ),
        .target(
            name: "MBDataFuzzTargets",
            dependencies: [
                "MBData", "MBDataServer", "MBDataClient", "MBDataWire",
            ],
            path: "Tests/Fuzz/Targets",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MBDataFuzzReplayTests",
            dependencies: ["MBDataFuzzTargets"],
            path: "Tests/FuzzReplayTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MBDataTests",
            dependencies: ["MBData", "MBDataTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "mbdataTests",
            dependencies: ["MBData", "MBDataTestSupport", "mbdata", "digits-trainer"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MBDataServerTests",
            dependencies: [
                "MBData", "MBDataServer", "MBDataClient", "MBDataWire", "MBDataTestSupport", "MBDataOrigin",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

if fuzzing {
    package.targets += [
        .target(name: "CFuzzerDriver", path: "Tests/Fuzz/CFuzzerDriver", cSettings: [.unsafeFlags(["-fsanitize=fuzzer-no-link"])]),
        .executableTarget(
            name: "mbdata-fuzz",
            dependencies: ["MBDataFuzzTargets", "CFuzzerDriver"],
            path: "Tests/Fuzz/Driver",
            swiftSettings: strictSettings,
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]
        ),
    ]
    package.products.append(.executable(name: "mbdata-fuzz", targets: ["mbdata-fuzz"]))
}
