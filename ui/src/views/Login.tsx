// Sign-in: user, password and, when the user has one, the second factor's code.
import { useState } from "preact/hooks";
import { ApiError, login } from "../api";

export function Login() {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      await login(user, password, totp || undefined);
    } catch (x) {
      setError((x as ApiError).message || "sign-in failed");
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>Patronus</h1>
      <form onSubmit={submit} aria-describedby={error ? "login-error" : undefined}>
        <label>
          User
          <input name="user" autoComplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <label>
          Code from your authenticator <span class="hint">(only if your account has a second factor)</span>
          <input
            name="totp"
            inputMode="numeric"
            autoComplete="one-time-code"
            value={totp}
            onInput={(e) => setTotp(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p id="login-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
