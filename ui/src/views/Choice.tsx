// A labelled drop-down: the one the views use to pick a site, a class or a role.
export function Choice({
  label,
  value,
  options,
  none,
  onChange,
}: {
  label: string;
  value: string;
  options: string[];
  none?: string; // the empty choice's text (absent: no empty choice)
  onChange: (v: string) => void;
}) {
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {none !== undefined && <option value="">{none}</option>}
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}
