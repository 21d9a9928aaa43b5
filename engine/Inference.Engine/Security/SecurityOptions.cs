namespace Inference.Engine.Security;

/// <summary>Whether the gRPC endpoint asks callers for a certificate (mutual TLS).</summary>
public enum ClientCertificates
{
    /// <summary>No client certificates.</summary>
    None,

    /// <summary>A client may present one; a presented one must verify, and then counts as a credential.</summary>
    Allow,

    /// <summary>Every connection must present one that verifies.</summary>
    Require,
}

/// <summary>
/// TLS and authentication of the engine's gRPC endpoint and of its own calls to other engines, section
/// <c>Inference:Security</c>. The parameter service, gRPC ingestion and <c>GetModel</c> need a bearer
/// token from <see cref="Tokens"/> or a verified client certificate; <c>Score</c> does when
/// <see cref="ScoreRequiresToken"/>. With neither tokens nor client certificates configured they take
/// calls from loopback only (a protected mode: nothing is open to the network by default).
/// </summary>
public sealed class SecurityOptions
{
    public const string Section = "Inference:Security";

    public TlsOptions Tls { get; set; } = new();

    /// <summary>Bearer tokens accepted (<c>authorization: Bearer TOKEN</c>); each at least 16 characters.</summary>
    public List<string> Tokens { get; set; } = [];

    /// <summary>Whether <c>Score</c> needs a token or client certificate as well (default: open).</summary>
    public bool ScoreRequiresToken { get; set; }

    /// <summary>What this engine presents when it calls another (a worker its parameter server, a worker another worker).</summary>
    public ClientSecurityOptions Client { get; set; } = new();

    /// <summary>Whether calls can authenticate at all (a token or a client certificate is configured).</summary>
    public bool HasCredentials => Tokens.Count > 0 || Tls.ClientCertificates != ClientCertificates.None;
}

/// <summary>The gRPC endpoint's TLS, section <c>Inference:Security:Tls</c>. Off unless a certificate is given.</summary>
public sealed class TlsOptions
{
    /// <summary>The server certificate: a PEM file (with <see cref="Key"/>, or holding the key too) or a PKCS#12 (.pfx/.p12) file.</summary>
    public string? Certificate { get; set; }

    /// <summary>The PEM private key of <see cref="Certificate"/> when it is in a separate file.</summary>
    public string? Key { get; set; }

    /// <summary>The password of a PKCS#12 certificate or of an encrypted PEM key.</summary>
    public string? Password { get; set; }

    public ClientCertificates ClientCertificates { get; set; } = ClientCertificates.None;

    /// <summary>PEM certificate(s) of the authority client certificates must chain to; unset: the system's trust store.</summary>
    public string? ClientCa { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Certificate);
}

/// <summary>What the engine presents as a client, section <c>Inference:Security:Client</c>.</summary>
public sealed class ClientSecurityOptions
{
    /// <summary>The bearer token sent on every call to another engine.</summary>
    public string? Token { get; set; }

    /// <summary>PEM certificate(s) of the authority that signed the servers' certificates (a private CA or a self-signed one); unset: the system's trust store.</summary>
    public string? Ca { get; set; }

    /// <summary>A client certificate for mutual TLS (PEM with <see cref="Key"/>, or PKCS#12).</summary>
    public string? Certificate { get; set; }

    public string? Key { get; set; }

    public string? Password { get; set; }
}
