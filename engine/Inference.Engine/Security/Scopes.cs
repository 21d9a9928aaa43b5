namespace Inference.Engine.Security;

/// <summary>What a credential may do: one scope per kind of method.</summary>
[Flags]
internal enum Scopes
{
    None = 0,

    /// <summary><c>Score</c>.</summary>
    Score = 1,

    /// <summary><c>GetFeatures</c>: raw per-entity values.</summary>
    Features = 2,

    /// <summary>gRPC ingestion: writing events and labels.</summary>
    Ingest = 4,

    /// <summary><c>GetModel</c> and the HTTP port's data: the dashboard and alerts streams, <c>/metrics</c>.</summary>
    Admin = 8,

    /// <summary>The parameter service: pulling and pushing weights, pool membership (engines among themselves).</summary>
    Sync = 16,

    All = Score | Features | Ingest | Admin | Sync,
}

/// <summary>Scopes as configuration writes them, and the scope each method needs.</summary>
internal static class ScopeNames
{
    /// <summary>Parses "score,features" (case-insensitive); null when a name is unknown or none is given.</summary>
    public static Scopes? Parse(string? names)
    {
        var scopes = Scopes.None;
        foreach (string name in (names ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse<Scopes>(name, ignoreCase: true, out var scope) || scope is Scopes.None or Scopes.All || !Enum.IsDefined(scope))
            {
                return null;
            }
            scopes |= scope;
        }
        return scopes == Scopes.None ? null : scopes;
    }

    public static string Describe(Scopes scopes) => scopes.ToString().ToLowerInvariant();

    /// <summary>The scope a gRPC method (e.g. "/inference.v1.ScoringService/Score") needs; None for the open ones (health, reflection).</summary>
    public static Scopes OfGrpc(string path) => path switch
    {
        "/inference.v1.ScoringService/Score" => Scopes.Score,
        "/inference.v1.ScoringService/GetFeatures" => Scopes.Features,
        _ when path.StartsWith("/inference.v1.IngestService/", StringComparison.Ordinal) => Scopes.Ingest,
        _ when path.StartsWith("/inference.v1.ParameterService/", StringComparison.Ordinal) => Scopes.Sync,
        _ when path.StartsWith("/grpc.health.v1.Health/", StringComparison.Ordinal) || path.StartsWith("/grpc.reflection.", StringComparison.Ordinal) => Scopes.None,
        _ => Scopes.Admin,
    };

    /// <summary>The scope a request to the HTTP port needs: None for the probes and the dashboard's page, else admin (<c>/metrics</c> unless open).</summary>
    public static Scopes OfHttp(string path, bool metricsOpen) => path switch
    {
        "/healthz" or "/readyz" or "/" or "/dashboard.js" => Scopes.None,
        "/metrics" => metricsOpen ? Scopes.None : Scopes.Admin,
        _ when path.StartsWith("/vendor/", StringComparison.Ordinal) => Scopes.None,
        _ => Scopes.Admin,
    };
}
