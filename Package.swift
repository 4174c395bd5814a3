// swift-tools-version:6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "mbdata",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "MBData", targets: ["MBData"]),
        .executable(name: "mbdata", targets: ["mbdata"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
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
        .target(
            name: "MBData",
            dependencies: [
                "CLZ4",
                "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "mbdata",
            dependencies: [
                "MBData",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "digits-trainer",
            dependencies: ["MBData"],
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
            name: "mbdata-insert-bench",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift")],
            path: "Benchmarks/insert-path",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "MBDataTests",
            dependencies: ["MBData"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "mbdataTests",
            dependencies: ["MBData", "mbdata", "digits-trainer"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
